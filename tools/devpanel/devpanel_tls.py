"""The development panel's own loopback certificate authority, made with the openssl CLI.

ca.pem / ca.key: a CA whose name constraints only permit localhost, 127.0.0.0/8 and ::1, so
trusting it (as `ca_file`) cannot vouch for any real host. server.pem / server.key: the
server's certificate for localhost, 127.0.0.1 and ::1, signed by that CA. The server key is
kept across restarts so a `pin_sha256` stays valid; the certificate is re-issued when it is
missing, expires within 30 days or no longer verifies against ca.pem.
"""

import base64
import fcntl
import hashlib
import os
import secrets
import subprocess
import tempfile

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE_S = 30 * 86400

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = myosicam devpanel

[v3_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
nameConstraints = critical,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0,\
permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class TLSError(Exception):
    pass


def _openssl(*args):
    proc = subprocess.run(("openssl",) + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise TLSError("openssl %s failed: %s" % (args[0], proc.stderr.decode("utf-8", "replace")
                                                  .strip().splitlines()[-1:] or ["?"]))
    return proc.stdout


def _openssl_ok(*args):
    return subprocess.run(("openssl",) + args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def paths(data_dir):
    return {name: os.path.join(data_dir, name)
            for name in ("ca.pem", "ca.key", "server.pem", "server.key")}


def ensure(data_dir):
    """Creates what is missing or stale; returns the paths. Safe against concurrent starts."""
    p = paths(data_dir)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        with open(os.path.join(data_dir, "tls.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with tempfile.TemporaryDirectory(prefix="devpanel-tls-") as tmp:
                cfg = os.path.join(tmp, "openssl.cnf")
                with open(cfg, "w") as f:
                    f.write(OPENSSL_CONFIG)
                _ensure_locked(p, tmp, cfg)
    finally:
        os.umask(old_umask)
    return p


def _ensure_locked(p, tmp, cfg):
    if not (os.path.exists(p["ca.pem"]) and os.path.exists(p["ca.key"])):
        key = os.path.join(tmp, "ca.key")
        pem = os.path.join(tmp, "ca.pem")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        _openssl("req", "-x509", "-new", "-key", key, "-out", pem, "-days", str(CA_DAYS),
                 "-sha256", "-subj", "/CN=myosicam devpanel loopback CA " + secrets.token_hex(4),
                 "-config", cfg, "-extensions", "v3_ca")
        os.replace(key, p["ca.key"])
        os.replace(pem, p["ca.pem"])
        for stale in (p["server.pem"],):
            if os.path.exists(stale):
                os.unlink(stale)
    if not os.path.exists(p["server.key"]):
        key = os.path.join(tmp, "server.key")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        os.replace(key, p["server.key"])
        if os.path.exists(p["server.pem"]):
            os.unlink(p["server.pem"])
    fresh = (os.path.exists(p["server.pem"])
             and _openssl_ok("x509", "-in", p["server.pem"], "-noout", "-checkend", str(RENEW_BEFORE_S))
             and _openssl_ok("verify", "-CAfile", p["ca.pem"], p["server.pem"]))
    if not fresh:
        csr = os.path.join(tmp, "server.csr")
        pem = os.path.join(tmp, "server.pem")
        _openssl("req", "-new", "-key", p["server.key"], "-out", csr, "-subj", "/CN=localhost",
                 "-config", cfg)
        _openssl("x509", "-req", "-in", csr, "-CA", p["ca.pem"], "-CAkey", p["ca.key"],
                 "-set_serial", "0x" + secrets.token_hex(16), "-days", str(SERVER_DAYS), "-sha256",
                 "-extfile", cfg, "-extensions", "v3_server", "-out", pem)
        os.chmod(pem, 0o644)
        os.replace(pem, p["server.pem"])
    os.chmod(p["ca.pem"], 0o644)


def pin_sha256(key_path):
    """The libcurl `sha256//BASE64` pin of a key's public half."""
    der = _openssl("pkey", "-in", key_path, "-pubout", "-outform", "DER")
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
