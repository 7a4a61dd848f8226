"""Read the real ``template.yaml`` and create its storage resources on an AWS endpoint.

Tests and the local runtime build the jobs table and the bucket from the
template's own definitions, so a change there is what they exercise: there is
no second, hand-written copy to drift.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags as their long form."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@lru_cache(maxsize=4)
def load_template(path: str | None = None) -> dict[str, Any]:
    with open(path or TEMPLATE, encoding="utf-8") as fh:
        return dict(yaml.load(fh, Loader=_CfnLoader))  # noqa: S506 - SafeLoader subclass


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return dict(template["Resources"][logical_id])


def resources_of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == rtype}


def create_table(dynamodb: Any, table_name: str, template: dict[str, Any] | None = None) -> None:
    """Create the jobs table exactly as ``JobsTable`` in the template defines it."""
    props = resource(template or load_template(), "JobsTable")["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "SSESpecification" in props:
        kwargs["SSESpecification"] = {"Enabled": bool(props["SSESpecification"]["SSEEnabled"])}
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )


def create_bucket(s3: Any, bucket_name: str, template: dict[str, Any] | None = None) -> None:
    """Create the media bucket with the template's encryption, access block, lifecycle, CORS."""
    props = resource(template or load_template(), "MediaBucket")["Properties"]
    s3.create_bucket(Bucket=bucket_name)
    configure_bucket(s3, bucket_name, props)


def configure_bucket(s3: Any, bucket_name: str, props: dict[str, Any]) -> None:
    """Apply a bucket resource's encryption, access block, CORS and lifecycle to an existing bucket."""
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=bucket_name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                    for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=bucket_name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "CorsRules" in props.get("CorsConfiguration", {}):  # (``!If`` on UploadOrigins: none locally)
        rules = [
            {"AllowedMethods": r["AllowedMethods"], "AllowedOrigins": r["AllowedOrigins"],
             "AllowedHeaders": r.get("AllowedHeaders", []), "MaxAgeSeconds": r.get("MaxAge", 0)}
            for r in props["CorsConfiguration"]["CorsRules"]
        ]
        s3.put_bucket_cors(Bucket=bucket_name, CORSConfiguration={"CORSRules": rules})
    if "LifecycleConfiguration" in props:
        rules = []
        for r in props["LifecycleConfiguration"]["Rules"]:
            rule: dict[str, Any] = {"ID": r["Id"], "Status": r["Status"],
                                    "Filter": {"Prefix": r.get("Prefix", "")}}
            if "ExpirationInDays" in r:
                rule["Expiration"] = {"Days": r["ExpirationInDays"]}
            if "AbortIncompleteMultipartUpload" in r:
                rule["AbortIncompleteMultipartUpload"] = r["AbortIncompleteMultipartUpload"]
            rules.append(rule)
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket_name, LifecycleConfiguration={"Rules": rules}
        )
