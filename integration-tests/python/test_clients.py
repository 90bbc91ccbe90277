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
