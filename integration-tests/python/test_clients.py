"""boto3 and aws CLI, exactly as installed from PyPI with default settings, against a running
Cairn cluster over plain HTTP and over HTTPS (where both send aws-chunked bodies with a
CRC32 trailer).

Run by the Rust integration test `python_clients`, which starts the cluster and sets:
CAIRN_S3_ENDPOINT, CAIRN_S3_TLS_ENDPOINT, CAIRN_TLS_CA_FILE, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION.
"""

import hashlib
import os
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

MIB = 1024 * 1024


def pseudo_random_bytes(size, seed):
    """Deterministic bytes, so a failure reproduces."""
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out.extend(block)
    return bytes(out[:size])


class ClientSuite:
    """Tests run once per endpoint; subclasses say which."""

    endpoint = None
    ca_file = None

    @classmethod
    def setUpClass(cls):
        cls.s3 = boto3.client(
            "s3",
            endpoint_url=cls.endpoint,
            verify=cls.ca_file if cls.ca_file else True,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        cls.bucket = "py-" + uuid.uuid4().hex[:12]
        cls.s3.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        paginator = cls.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=cls.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                cls.s3.delete_objects(Bucket=cls.bucket, Delete={"Objects": keys, "Quiet": True})
        cls.s3.delete_bucket(Bucket=cls.bucket)

    def error_code(self, call, *args, **kwargs):
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            call(*args, **kwargs)
        return caught.exception.response["Error"]["Code"], caught.exception.response["ResponseMetadata"][
            "HTTPStatusCode"
        ]

    def aws(self, *args, check=True):
        """Runs the aws CLI against the endpoint; returns stdout."""
        command = [sys.executable, "-m", "awscli", "--endpoint-url", self.endpoint]
        if self.ca_file:
            command += ["--ca-bundle", self.ca_file]
        result = subprocess.run(command + list(args), capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            self.fail(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def fetch(self, url):
        """A plain HTTP GET, as curl would send it; returns (status, body)."""
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(url, context=context, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # boto3

    def test_put_get_head_with_checksums(self):
        body = pseudo_random_bytes(300_001, 1)
        put = self.s3.put_object(Bucket=self.bucket, Key="boto/obj", Body=body, Metadata={"colour": "blue"})
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
        got = self.s3.get_object(Bucket=self.bucket, Key="boto/obj", ChecksumMode="ENABLED")
        self.assertEqual(got["Body"].read(), body)
        self.assertEqual(got["Metadata"], {"colour": "blue"})
        head = self.s3.head_object(Bucket=self.bucket, Key="boto/obj", ChecksumMode="ENABLED")
        self.assertEqual(head["ContentLength"], len(body))
        self.assertEqual(head.get("ChecksumType"), "FULL_OBJECT")
        # aws-chunked (what boto3 sends over https) describes the request, not the object.
        self.assertNotIn("ContentEncoding", head)
        self.s3.put_object(Bucket=self.bucket, Key="boto/gz", Body=body, ContentEncoding="gzip")
        self.assertEqual(self.s3.head_object(Bucket=self.bucket, Key="boto/gz")["ContentEncoding"], "gzip")
        # CRC32C and CRC64NVME need botocore[crt]; the Rust suite covers them.
        for algorithm in ["SHA1", "SHA256"]:
            self.s3.put_object(Bucket=self.bucket, Key="boto/" + algorithm, Body=body, ChecksumAlgorithm=algorithm)
            got = self.s3.get_object(Bucket=self.bucket, Key="boto/" + algorithm, ChecksumMode="ENABLED")
            self.assertEqual(got["Body"].read(), body, algorithm)
            self.assertIn("Checksum" + algorithm, got, algorithm)
        empty = self.s3.put_object(Bucket=self.bucket, Key="boto/empty", Body=b"")
        self.assertEqual(empty["ETag"], '"d41d8cd98f00b204e9800998ecf8427e"')
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="boto/empty")["Body"].read(), b"")

    def test_transfer_manager_multipart_round_trip(self):
        data = pseudo_random_bytes(21 * MIB + 5, 2)
        config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
        with tempfile.TemporaryDirectory() as tmp:
            source, target = os.path.join(tmp, "up"), os.path.join(tmp, "down")
            with open(source, "wb") as f:
                f.write(data)
            self.s3.upload_file(source, self.bucket, "boto/big", Config=config)
            head = self.s3.head_object(Bucket=self.bucket, Key="boto/big")
            self.assertTrue(head["ETag"].endswith('-3"'), head["ETag"])
            self.s3.download_file(self.bucket, "boto/big", target, Config=config)
            with open(target, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())

    def test_copy_delete_objects_and_listing(self):
        self.s3.put_object(Bucket=self.bucket, Key="list/src", Body=b"copied bytes", ContentType="text/x-src")
        self.s3.copy_object(Bucket=self.bucket, Key="list/dst", CopySource={"Bucket": self.bucket, "Key": "list/src"})
        head = self.s3.head_object(Bucket=self.bucket, Key="list/dst")
        self.assertEqual(head["ContentType"], "text/x-src")
        for i in range(25):
            self.s3.put_object(Bucket=self.bucket, Key=f"list/many/{i:02d} ü+&", Body=b"x")
        paginator = self.s3.get_paginator("list_objects_v2")
        keys = [o["Key"] for page in paginator.paginate(Bucket=self.bucket, Prefix="list/many/", PaginationConfig={"PageSize": 7}) for o in page.get("Contents", [])]
        self.assertEqual(keys, [f"list/many/{i:02d} ü+&" for i in range(25)])
        top = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="list/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in top.get("CommonPrefixes", [])], ["list/many/"])
        deleted = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
        self.assertEqual(len(deleted.get("Deleted", [])), 25)
        self.assertNotIn("Contents", self.s3.list_objects_v2(Bucket=self.bucket, Prefix="list/many/"))

    def test_conditional_requests_and_errors(self):
        put = self.s3.put_object(Bucket=self.bucket, Key="cond/k", Body=b"v1")
        code, status = self.error_code(self.s3.get_object, Bucket=self.bucket, Key="cond/k", IfNoneMatch=put["ETag"])
        self.assertEqual(status, 304)
        code, status = self.error_code(self.s3.get_object, Bucket=self.bucket, Key="cond/k", IfMatch='"nope"')
        self.assertEqual((code, status), ("PreconditionFailed", 412))
        code, status = self.error_code(self.s3.put_object, Bucket=self.bucket, Key="cond/k", Body=b"v2", IfNoneMatch="*")
        self.assertEqual((code, status), ("PreconditionFailed", 412))
        self.assertEqual(self.error_code(self.s3.get_object, Bucket=self.bucket, Key="cond/missing"), ("NoSuchKey", 404))
        self.assertEqual(self.error_code(self.s3.head_bucket, Bucket="no-such-bucket-" + uuid.uuid4().hex[:8])[1], 404)
        stranger = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            verify=self.ca_file if self.ca_file else True,
            aws_access_key_id="AKIDUNKNOWN000000000",
            aws_secret_access_key="x" * 40,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        self.assertEqual(self.error_code(stranger.list_buckets), ("InvalidAccessKeyId", 403))
        forger = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            verify=self.ca_file if self.ca_file else True,
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key="y" * 40,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        self.assertEqual(self.error_code(forger.list_buckets), ("SignatureDoesNotMatch", 403))

    def test_presigned_urls(self):
        self.s3.put_object(Bucket=self.bucket, Key="share/file name.txt", Body=b"shared")
        url = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": "share/file name.txt"}, ExpiresIn=300
        )
        self.assertEqual(self.fetch(url), (200, b"shared"))
        expired = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": "share/file name.txt"}, ExpiresIn=-10
        )
        self.assertEqual(self.fetch(expired)[0], 403)

    # aws CLI

    def test_aws_cli_cp_sync_ls_presign_rm(self):
        with tempfile.TemporaryDirectory() as tmp:
            big = os.path.join(tmp, "big.bin")
            data = pseudo_random_bytes(9 * MIB + 1, 3)
            with open(big, "wb") as f:
                f.write(data)
            self.aws("s3", "cp", big, f"s3://{self.bucket}/cli/big.bin")
            back = os.path.join(tmp, "back.bin")
            self.aws("s3", "cp", f"s3://{self.bucket}/cli/big.bin", back)
            with open(back, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())

            tree = os.path.join(tmp, "tree")
            os.makedirs(os.path.join(tree, "sub"))
            for name in ["a.txt", "sub/b.txt", "sub/c d.txt"]:
                with open(os.path.join(tree, name), "w") as f:
                    f.write(name)
            self.aws("s3", "sync", tree, f"s3://{self.bucket}/cli/tree")
            listing = self.aws("s3", "ls", "--recursive", f"s3://{self.bucket}/cli/tree/").stdout
            for name in ["a.txt", "sub/b.txt", "sub/c d.txt"]:
                self.assertIn("cli/tree/" + name, listing)
            # A second sync finds nothing to do.
            self.assertEqual(self.aws("s3", "sync", tree, f"s3://{self.bucket}/cli/tree").stdout.strip(), "")
            self.aws("s3", "mv", f"s3://{self.bucket}/cli/tree/a.txt", f"s3://{self.bucket}/cli/moved.txt")

            url = self.aws("s3", "presign", f"s3://{self.bucket}/cli/moved.txt", "--expires-in", "300").stdout.strip()
            self.assertEqual(self.fetch(url), (200, b"a.txt"))

            head = self.aws("s3api", "head-object", "--bucket", self.bucket, "--key", "cli/big.bin").stdout
            self.assertIn('"ContentLength": %d' % len(data), head)
            self.aws("s3", "rm", "--recursive", f"s3://{self.bucket}/cli/")
            self.assertEqual(self.aws("s3", "ls", "--recursive", f"s3://{self.bucket}/cli/", check=False).stdout, "")
            missing = self.aws("s3api", "get-object", "--bucket", self.bucket, "--key", "cli/gone", os.path.join(tmp, "x"), check=False)
            self.assertNotEqual(missing.returncode, 0)
            self.assertIn("NoSuchKey", missing.stderr)


    def s3api(self, *args, check=True):
        """An `aws s3api` call; returns its JSON output (or the result when check is False)."""
        import json

        result = self.aws("s3api", *args, check=check)
        if not check:
            return result
        return json.loads(result.stdout) if result.stdout.strip() else {}

    def test_aws_cli_s3api_operations(self):
        b = self.bucket
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "body")
            with open(source, "wb") as f:
                f.write(b"api body")
            self.s3api("put-object", "--bucket", b, "--key", "api/obj", "--body", source, "--tagging", "a=1")
            tags = self.s3api("get-object-tagging", "--bucket", b, "--key", "api/obj")
            self.assertEqual(tags["TagSet"], [{"Key": "a", "Value": "1"}])
            self.s3api("put-object-tagging", "--bucket", b, "--key", "api/obj", "--tagging", "TagSet=[{Key=b,Value=2}]")
            self.assertEqual(self.s3api("get-object-tagging", "--bucket", b, "--key", "api/obj")["TagSet"], [{"Key": "b", "Value": "2"}])

            copied = self.s3api("copy-object", "--bucket", b, "--key", "api/copy", "--copy-source", f"{b}/api/obj")
            self.assertEqual(copied["CopyObjectResult"]["ETag"], '"%s"' % hashlib.md5(b"api body").hexdigest())

            acl = self.s3api("get-object-acl", "--bucket", b, "--key", "api/obj")
            self.assertEqual([g["Permission"] for g in acl["Grants"]], ["FULL_CONTROL"])
            self.s3api("put-object-acl", "--bucket", b, "--key", "api/obj", "--acl", "public-read")
            self.assertEqual(len(self.s3api("get-object-acl", "--bucket", b, "--key", "api/obj")["Grants"]), 2)

            upload = self.s3api("create-multipart-upload", "--bucket", b, "--key", "api/mp")
            listed = self.s3api("list-multipart-uploads", "--bucket", b, "--prefix", "api/")
            self.assertIn(upload["UploadId"], [u["UploadId"] for u in listed.get("Uploads", [])])
            self.s3api("upload-part", "--bucket", b, "--key", "api/mp", "--upload-id", upload["UploadId"], "--part-number", "1", "--body", source)
            parts = self.s3api("list-parts", "--bucket", b, "--key", "api/mp", "--upload-id", upload["UploadId"])
            self.assertEqual([p["PartNumber"] for p in parts["Parts"]], [1])
            self.s3api("abort-multipart-upload", "--bucket", b, "--key", "api/mp", "--upload-id", upload["UploadId"])
            gone = self.s3api("list-parts", "--bucket", b, "--key", "api/mp", "--upload-id", upload["UploadId"], check=False)
            self.assertIn("NoSuchUpload", gone.stderr)

            self.assertNotIn("Status", self.s3api("get-bucket-versioning", "--bucket", b))
            versions = self.s3api("list-object-versions", "--bucket", b, "--prefix", "api/")
            self.assertTrue(all(v["VersionId"] == "null" for v in versions["Versions"]))

            cors = '{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"]}]}'
            self.s3api("put-bucket-cors", "--bucket", b, "--cors-configuration", cors)
            self.assertEqual(self.s3api("get-bucket-cors", "--bucket", b)["CORSRules"][0]["AllowedMethods"], ["GET"])
            self.s3api("delete-bucket-cors", "--bucket", b)
            self.s3api("put-bucket-tagging", "--bucket", b, "--tagging", "TagSet=[{Key=env,Value=test}]")
            self.assertEqual(self.s3api("get-bucket-tagging", "--bucket", b)["TagSet"], [{"Key": "env", "Value": "test"}])
            self.s3api("delete-bucket-tagging", "--bucket", b)

            deleted = self.s3api("delete-objects", "--bucket", b, "--delete", "Objects=[{Key=api/obj},{Key=api/copy}]")
            self.assertEqual(sorted(d["Key"] for d in deleted["Deleted"]), ["api/copy", "api/obj"])
            missing = self.s3api("head-object", "--bucket", b, "--key", "api/obj", check=False)
            self.assertIn("404", missing.stderr)
            unsupported = self.s3api("put-bucket-versioning", "--bucket", b, "--versioning-configuration", "Status=Enabled", check=False)
            self.assertIn("NotImplemented", unsupported.stderr)


class OverHttp(ClientSuite, unittest.TestCase):
    endpoint = os.environ.get("CAIRN_S3_ENDPOINT")


class OverHttps(ClientSuite, unittest.TestCase):
    endpoint = os.environ.get("CAIRN_S3_TLS_ENDPOINT")
    ca_file = os.environ.get("CAIRN_TLS_CA_FILE")


if __name__ == "__main__":
    missing = [name for name in ["CAIRN_S3_ENDPOINT", "CAIRN_S3_TLS_ENDPOINT", "AWS_ACCESS_KEY_ID"] if not os.environ.get(name)]
    if missing:
        sys.exit("set " + ", ".join(missing) + " (the Rust test python_clients does)")
    unittest.main(verbosity=2)
