"""certs.py - test certificates made at test time with the openssl command.

make(directory) writes, and returns the paths of (a dict):
    ca, ca_key            "Porter Test CA" (EC P-256), the issuer of everything below
    server, server_key    mail.porter.test, localhost, 127.0.0.1, ::1 (RSA 2048)
    other, other_key      other.porter.test and *.other.test (EC P-256): the second SNI name
    renewed, renewed_key  mail.porter.test again, a new key: the certificate after a reload
    client, client_key    client.porter.test, extendedKeyUsage clientAuth
    rogue, rogue_key      a self-signed client certificate no CA vouches for
    combined              server certificate and key in one file
    encrypted_key         the server key under a passphrase (porter must refuse it)
    garbage               a file that is no PEM at all
fingerprint(path) is the SHA-256 fingerprint of a PEM certificate as "AB:CD:...";
der_fingerprint(der) the same for DER bytes (what ssl.SSLSocket.getpeercert(True) gives).
client_context(...) makes a client ssl.SSLContext; SmtpClient is harness.Client (a raw SMTP
client over loopback) that can switch to TLS (STARTTLS) or start with it (implicit TLS), and
crypt_hash() makes crypt(3) password hashes with the system's libcrypt (yescrypt, sha512-crypt,
bcrypt).
"""
import ctypes
import hashlib
import os
import ssl
import subprocess

from harness import Client, read_reply  # noqa: E402

OPENSSL = "openssl"
DAYS = "30"


def _run(*args):
    subprocess.run([OPENSSL] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _key(path, kind):
    if kind == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)


def _leaf(directory, name, subject, extensions, kind, ca, ca_key):
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    cert = os.path.join(directory, name + ".pem")
    ext = os.path.join(directory, name + ".ext")
    _key(key, kind)
    with open(ext, "w") as f:
        f.write("basicConstraints = CA:FALSE\n" + extensions)
    _run("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    _run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", DAYS, "-sha256", "-extfile", ext, "-out", cert)
    return cert, key


def make(directory):
    """Create every certificate in directory; returns a dict of paths."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    _key(ca_key, "ec")
    _run("req", "-x509", "-new", "-key", ca_key, "-subj", "/O=Porter Tests/CN=Porter Test CA",
         "-days", DAYS, "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", ca)
    out["ca"], out["ca_key"] = ca, ca_key
    server_ext = ("subjectAltName = DNS:mail.porter.test, DNS:localhost, IP:127.0.0.1, IP:::1\n"
                  "extendedKeyUsage = serverAuth\n")
    out["server"], out["server_key"] = _leaf(directory, "server", "/CN=mail.porter.test",
                                             server_ext, "rsa", ca, ca_key)
    out["other"], out["other_key"] = _leaf(
        directory, "other", "/CN=other.porter.test",
        "subjectAltName = DNS:other.porter.test, DNS:*.other.test\nextendedKeyUsage = serverAuth\n",
        "ec", ca, ca_key)
    out["renewed"], out["renewed_key"] = _leaf(directory, "renewed", "/CN=mail.porter.test",
                                               server_ext, "ec", ca, ca_key)
    out["client"], out["client_key"] = _leaf(
        directory, "client", "/O=Porter Tests/CN=client.porter.test",
        "extendedKeyUsage = clientAuth\n", "ec", ca, ca_key)
    rogue_key = os.path.join(directory, "rogue.key")
    rogue = os.path.join(directory, "rogue.pem")
    _key(rogue_key, "ec")
    _run("req", "-x509", "-new", "-key", rogue_key, "-subj", "/CN=rogue.porter.test",
         "-days", DAYS, "-out", rogue)
    out["rogue"], out["rogue_key"] = rogue, rogue_key
    combined = os.path.join(directory, "combined.pem")
    with open(combined, "w") as f:
        f.write(open(out["server"]).read() + open(out["server_key"]).read())
    out["combined"] = combined
    encrypted = os.path.join(directory, "encrypted.key")
    _run("pkey", "-in", out["server_key"], "-aes256", "-passout", "pass:secret", "-out", encrypted)
    out["encrypted_key"] = encrypted
    garbage = os.path.join(directory, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("this is not a certificate\n")
    out["garbage"] = garbage
    return out


def der_fingerprint(der):
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fingerprint(path):
    """SHA-256 fingerprint of the first certificate in a PEM file."""
    der = subprocess.run([OPENSSL, "x509", "-in", path, "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE, timeout=30).stdout
    return der_fingerprint(der)


def client_context(ca=None, cert=None, key=None, check_hostname=True, maximum=None):
    """A client TLS context: verify against ca (or not at all), optionally a client cert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        context.load_verify_locations(ca)
        context.check_hostname = check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, key)
    if maximum is not None:
        context.maximum_version = maximum
    return context


class SmtpClient(Client):
    """harness.Client over loopback (IPv4 or IPv6, from source when given) that can switch to
    TLS (STARTTLS) or start with it (implicit TLS); a connection broken (or timed out) under
    it reads as the end (code 0)."""

    def __init__(self, port, host="127.0.0.1", timeout=10, context=None, server_hostname=None,
                 session=None, source=None):
        super().__init__(port, timeout, host, source)
        if context is not None:
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname,
                                            session=session)

    def reply(self):
        """One complete reply: (code, [lines]); code 0 on EOF."""
        def more():
            try:
                return self.sock.recv(65536)
            except OSError:  # ssl.SSLError and socket.timeout are OSErrors
                return b""
        code, lines, self.buffer = read_reply(self.buffer, more)
        return (code, lines)

    def starttls(self, context, server_hostname=None, session=None):
        """Switch to TLS after a 220 (bytes buffered from the plaintext phase are an error)."""
        if self.buffer:
            raise RuntimeError("plaintext left in the buffer before TLS: %r" % self.buffer)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname,
                                        session=session)

    def peer_fingerprint(self):
        return der_fingerprint(self.sock.getpeercert(True))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


_libcrypt = None


def crypt_hash(password, prefix="$y$"):
    """crypt(3) hash of password with a fresh salt: "$y$" yescrypt, "$6$" sha512-crypt,
    "$2b$" bcrypt (whatever this system's libcrypt makes)."""
    global _libcrypt
    if _libcrypt is None:
        _libcrypt = ctypes.CDLL("libcrypt.so.1")
        _libcrypt.crypt_gensalt.restype = ctypes.c_char_p
        _libcrypt.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                            ctypes.c_int]
        _libcrypt.crypt.restype = ctypes.c_char_p
        _libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = _libcrypt.crypt_gensalt(prefix.encode(), 0, None, 0)
    if not salt:
        raise RuntimeError("libcrypt cannot make a %s salt" % prefix)
    hashed = _libcrypt.crypt(password.encode(), salt)
    if not hashed or hashed.startswith(b"*"):
        raise RuntimeError("libcrypt cannot hash with %s" % prefix)
    return hashed.decode()
