"""Checks Vigil's MSK IAM tokens against AWS's own signer (aws-msk-iam-sasl-signer-python).

Reads the cases from cases.json and Vigil's tokens for them (JSON lines: case, token,
expires_at_ms) from the file named on the command line. For each case, the reference signer signs
at the same instant (botocore's clock frozen there) with the same credentials; both tokens must
decode to the same URL, parameter for parameter (the User-Agent aside: each names its signer),
and give the same expiry. Exits 1 naming every difference.
"""

import base64
import datetime
import json
import pathlib
import sys
from unittest import mock
from urllib.parse import parse_qs, urlparse

import botocore.auth
from botocore.credentials import CredentialProvider, Credentials
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider


class Static(CredentialProvider):
    def __init__(self, case):
        super().__init__()
        self.case = case

    def load(self):
        return Credentials(self.case["access_key_id"], self.case["secret_access_key"],
                           self.case.get("session_token"))


def decode(token):
    padded = token + "=" * (-len(token) % 4)
    url = base64.urlsafe_b64decode(padded.encode()).decode()
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}", parse_qs(parsed.query, keep_blank_values=True)


def main():
    cases = json.loads((pathlib.Path(__file__).parent / "cases.json").read_text())
    ours = [json.loads(line) for line in pathlib.Path(sys.argv[1]).read_text().splitlines() if line]
    if len(ours) != len(cases):
        print(f"Vigil signed {len(ours)} tokens for {len(cases)} cases")
        return 1
    failures = 0
    for index, (case, vigil) in enumerate(zip(cases, ours)):
        at = datetime.datetime.fromtimestamp(case["at"], tz=datetime.timezone.utc).replace(tzinfo=None)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
            token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
                case["region"], Static(case))
        reference_base, reference = decode(token)
        vigil_base, signed = decode(vigil["token"])
        reference.pop("User-Agent", None)
        user_agent = signed.pop("User-Agent", None)
        problems = []
        if reference_base != vigil_base:
            problems.append(f"URL {vigil_base} where the reference has {reference_base}")
        for name in sorted(set(reference) | set(signed)):
            if reference.get(name) != signed.get(name):
                problems.append(f"{name}: {signed.get(name)} where the reference has {reference.get(name)}")
        if not user_agent:
            problems.append("no User-Agent parameter")
        if int(vigil["expires_at_ms"]) != int(expiry_ms):
            problems.append(f"expiry {vigil['expires_at_ms']} where the reference has {expiry_ms}")
        if problems:
            failures += 1
            print(f"case {index} ({case['name']}):")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"case {index} ({case['name']}): same URL, signature and expiry as the reference signer")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
