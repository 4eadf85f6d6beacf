// The broker half of MSK IAM, for Vigil's broker test (kafka/tests/kafka/msk_iam.rs): Apache Kafka
// checks each SASL/OAUTHBEARER token as Amazon MSK does, so the test shows Vigil's tokens working
// through librdkafka end to end. A token is base64url of a SigV4 presigned URL
// (GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect&X-Amz-...); the signature
// is computed again from the secret key of the access key it names and must match, the date plus
// X-Amz-Expires must not have passed, and the credential scope must name the URL's region and the
// kafka-cluster service.
//
// The test's credentials server hands out access keys starting with ASIAVIGILTEST whose secret is
// "secret-for-" + the access key, all of one IAM role; any other key, or any other secret, is
// refused. Every decision is
// appended to the file named by the JAAS option auditLog: "ACCEPT <access key>" or
// "REJECT <access key> <reason>".
//
// Compiled by the test harness (javac, against the broker's jars) and put on the broker's classpath:
// listener.name.<listener>.oauthbearer.sasl.server.callback.handler.class=VigilMskIamValidator

import java.io.FileWriter;
import java.io.IOException;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerExtensionsValidatorCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

public class VigilMskIamValidator implements AuthenticateCallbackHandler {
    private static final String KEY_PREFIX = "ASIAVIGILTEST";
    private static final DateTimeFormatter AMZ_DATE =
        DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);
    private String auditLog;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
        for (AppConfigurationEntry entry : entries) {
            Object path = entry.getOptions().get("auditLog");
            if (path != null) {
                auditLog = path.toString();
            }
        }
    }

    @Override
    public void close() {}

    @Override
    public void handle(Callback[] callbacks) throws IOException, UnsupportedCallbackException {
        for (Callback callback : callbacks) {
            if (callback instanceof OAuthBearerValidatorCallback) {
                validate((OAuthBearerValidatorCallback) callback);
            } else if (callback instanceof OAuthBearerExtensionsValidatorCallback) {
                OAuthBearerExtensionsValidatorCallback extensions =
                    (OAuthBearerExtensionsValidatorCallback) callback;
                for (String name : extensions.inputExtensions().map().keySet()) {
                    extensions.valid(name);
                }
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    private void validate(OAuthBearerValidatorCallback callback) {
        String accessKey = "?";
        try {
            String url = new String(Base64.getUrlDecoder().decode(callback.tokenValue()), StandardCharsets.UTF_8);
            URI uri = URI.create(url);
            Map<String, String> query = new HashMap<>();
            for (String pair : uri.getRawQuery().split("&")) {
                int equals = pair.indexOf('=');
                String name = URLDecoder.decode(pair.substring(0, equals), StandardCharsets.UTF_8);
                String value = URLDecoder.decode(pair.substring(equals + 1), StandardCharsets.UTF_8);
                if (query.put(name, value) != null) {
                    throw new IllegalArgumentException("parameter " + name + " twice");
                }
            }
            String[] scope = require(query, "X-Amz-Credential").split("/");
            if (scope.length != 5) {
                throw new IllegalArgumentException("credential scope " + String.join("/", scope));
            }
            accessKey = scope[0];
            String date = scope[1];
            String region = scope[2];
            check("https".equals(uri.getScheme()) && "/".equals(uri.getPath()), "not https://.../");
            check(("kafka." + region + ".amazonaws.com").equals(uri.getHost()), "host " + uri.getHost() + " is not the scope's region");
            check("kafka-cluster".equals(scope[3]) && "aws4_request".equals(scope[4]), "scope service");
            check("kafka-cluster:Connect".equals(require(query, "Action")), "action");
            check("AWS4-HMAC-SHA256".equals(require(query, "X-Amz-Algorithm")), "algorithm");
            check("host".equals(require(query, "X-Amz-SignedHeaders")), "signed headers");
            String amzDate = require(query, "X-Amz-Date");
            check(amzDate.startsWith(date), "date outside the scope");
            Instant signedAt = Instant.from(AMZ_DATE.parse(amzDate));
            long expires = Long.parseLong(require(query, "X-Amz-Expires"));
            check(expires > 0 && expires <= 900, "X-Amz-Expires " + expires);
            Instant now = Instant.now();
            check(!signedAt.isAfter(now.plusSeconds(300)), "signed in the future");
            check(now.isBefore(signedAt.plusSeconds(expires)), "expired");
            check(accessKey.startsWith(KEY_PREFIX), "unknown access key");

            List<String> canonical = new ArrayList<>();
            for (Map.Entry<String, String> entry : query.entrySet()) {
                String name = entry.getKey();
                if (name.equals("X-Amz-Signature") || name.equals("User-Agent")) {
                    continue;
                }
                canonical.add(encode(name) + "=" + encode(entry.getValue()));
            }
            Collections.sort(canonical);
            String canonicalRequest = "GET\n/\n" + String.join("&", canonical) + "\nhost:" + uri.getHost()
                + "\n\nhost\n" + hex(sha256(new byte[0]));
            String stringToSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + date + "/" + region
                + "/kafka-cluster/aws4_request\n" + hex(sha256(canonicalRequest.getBytes(StandardCharsets.UTF_8)));
            byte[] key = hmac(("AWS4secret-for-" + accessKey).getBytes(StandardCharsets.UTF_8), date);
            key = hmac(key, region);
            key = hmac(key, "kafka-cluster");
            key = hmac(key, "aws4_request");
            String expected = hex(hmac(key, stringToSign));
            check(MessageDigest.isEqual(expected.getBytes(StandardCharsets.UTF_8),
                require(query, "X-Amz-Signature").getBytes(StandardCharsets.UTF_8)), "signature does not match");

            long lifetime = signedAt.plusSeconds(expires).toEpochMilli();
            // The principal is the IAM identity behind the keys, as on MSK (a role's session), not
            // the access key: the keys rotate while the identity stays, and Kafka refuses a
            // re-authentication that changes the principal.
            String principal = "arn:aws:sts::123456789012:assumed-role/vigil/pod";
            String value = callback.tokenValue();
            long start = signedAt.toEpochMilli();
            callback.token(new OAuthBearerToken() {
                public String value() { return value; }
                public Set<String> scope() { return Collections.emptySet(); }
                public long lifetimeMs() { return lifetime; }
                public String principalName() { return principal; }
                public Long startTimeMs() { return start; }
            });
            audit("ACCEPT " + accessKey);
        } catch (RuntimeException | java.security.GeneralSecurityException error) {
            audit("REJECT " + accessKey + " " + error.getMessage());
            callback.error("invalid_token", null, null);
        }
    }

    private static String require(Map<String, String> query, String name) {
        String value = query.get(name);
        if (value == null) {
            throw new IllegalArgumentException("no " + name);
        }
        return value;
    }

    private static void check(boolean holds, String reason) {
        if (!holds) {
            throw new IllegalArgumentException(reason);
        }
    }

    /** SigV4's URI encoding: every byte but the unreserved characters as %XX. */
    private static String encode(String text) {
        StringBuilder out = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                || c == '-' || c == '_' || c == '.' || c == '~') {
                out.append(c);
            } else {
                out.append(String.format("%%%02X", b & 0xff));
            }
        }
        return out.toString();
    }

    private static byte[] sha256(byte[] data) throws java.security.GeneralSecurityException {
        return MessageDigest.getInstance("SHA-256").digest(data);
    }

    private static byte[] hmac(byte[] key, String data) throws java.security.GeneralSecurityException {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder();
        for (byte b : bytes) {
            out.append(String.format("%02x", b & 0xff));
        }
        return out.toString();
    }

    private synchronized void audit(String line) {
        if (auditLog == null) {
            return;
        }
        try (FileWriter writer = new FileWriter(auditLog, true)) {
            writer.write(line + "\n");
        } catch (IOException ignored) {
            // The test reads this file; a write that fails shows as a missing line there.
        }
    }
}
