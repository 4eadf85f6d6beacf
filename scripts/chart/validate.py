"""Validates rendered Helm manifests offline.

Kubernetes objects against the Kubernetes API's JSON schemas (kubernetes-validate, strict: an
unknown field is an error); custom resources (KEDA, Prometheus Operator) against the
openAPIV3Schema of their CustomResourceDefinition, with unknown fields reported as the API
server's pruning would drop them silently.

Usage: validate.py --kubernetes 1.34.0 --crd CRD.yaml... MANIFESTS.yaml...
"""

import argparse
import sys

import jsonschema
import kubernetes_validate
import yaml


def load_crds(paths):
    schemas = {}
    for path in paths:
        with open(path, encoding="utf-8") as file:
            for crd in yaml.safe_load_all(file):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    api_version = f'{spec["group"]}/{version["name"]}'
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema:
                        schemas[(api_version, spec["names"]["kind"])] = schema
    return schemas


def unknown_fields(value, schema, path):
    """Fields a structural schema does not declare (and does not let through)."""
    if not isinstance(schema, dict):
        return []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, f"{path}.{key}")
            elif properties is not None and additional is not True:
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def without_metadata(schema):
    # The API server validates metadata itself; CRD schemas leave it open.
    schema = dict(schema)
    properties = dict(schema.get("properties", {}))
    properties.pop("metadata", None)
    schema["properties"] = properties
    return schema


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes", required=True)
    parser.add_argument("--crd", action="append", default=[])
    parser.add_argument("manifests", nargs="+")
    args = parser.parse_args()
    crds = load_crds(args.crd)
    problems = []
    checked = 0
    kinds = set()
    for path in args.manifests:
        with open(path, encoding="utf-8") as file:
            documents = [doc for doc in yaml.safe_load_all(file) if doc]
        for doc in documents:
            name = f'{path}: {doc.get("kind")}/{doc.get("metadata", {}).get("name")}'
            key = (doc.get("apiVersion"), doc.get("kind"))
            kinds.add(f"{key[0]} {key[1]}")
            checked += 1
            if key in crds:
                schema = without_metadata(crds[key])
                validator = jsonschema.Draft7Validator(schema)
                for error in validator.iter_errors(doc):
                    where = ".".join(str(part) for part in error.absolute_path)
                    problems.append(f"{name}: {where}: {error.message}")
                for field in unknown_fields({k: v for k, v in doc.items() if k != "metadata"}, schema, ""):
                    problems.append(f"{name}: unknown field {field.lstrip('.')}")
                continue
            try:
                kubernetes_validate.validate(doc, args.kubernetes, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{name}: no schema for {key[0]} {key[1]} (neither Kubernetes nor a given CRD)")
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(part) for part in error.path)
                problems.append(f"{name}: {where}: {error.message}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"validated {checked} manifests ({len(kinds)} kinds) against Kubernetes {args.kubernetes} "
          f"and {len(crds)} CRD versions: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
