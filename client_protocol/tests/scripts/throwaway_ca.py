"""A throwaway CA and a server certificate it signs for 127.0.0.1 and localhost, valid for two days.

Written into the folder given: ca.pem (what a client trusts), server.pem and server.key (what the web app
serves). Run with a client environment's Python: `cryptography` comes with snowflake-connector-python,
and the studio's own environment needs neither it nor the openssl CLI.
"""
import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

folder = Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)


def certificate(subject, issuer, public_key, signing_key, extensions):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def usage(**flags):
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Studio test CA")])
# The extensions a strict verifier (Python 3.13's default VERIFY_X509_STRICT) asks of both certificates.
ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, [
    (x509.BasicConstraints(ca=True, path_length=0), True),
    (usage(key_cert_sign=True, crl_sign=True), True),
    (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
])
server = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
                     server_key.public_key(), ca_key, [
    (x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
     False),
    (x509.BasicConstraints(ca=False, path_length=None), True),
    (usage(digital_signature=True), True),
    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    (x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False),
    (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
])
(folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
(folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
(folder / "server.key").write_bytes(server_key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
