"""Certificates (certtool) and the server-side TLS context for TLS to Logstash."""

import os
import shutil
import ssl
import subprocess

from .base import Skip, check


# certtool templates: (signed by, template). Every certificate gets the same short life.
_PKI = {
    "ca": (None, 'cn = "quicstash test CA"\nca\ncert_signing_key\n'),
    # an unrelated CA: trusting it is trusting the wrong CA
    "other-ca": (None, 'cn = "unrelated test CA"\nca\ncert_signing_key\n'),
    "server": ("ca", 'cn = "logstash"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                     'tls_www_server\nsigning_key\nencryption_key\n'),
    # signed by the right CA, but for another name: 127.0.0.1 must not match it
    "wrong-name": ("ca", 'cn = "elsewhere.example"\ndns_name = "elsewhere.example"\n'
                         'tls_www_server\nsigning_key\nencryption_key\n'),
    "client": ("ca", 'cn = "quicstash shipper"\ntls_www_client\nsigning_key\n'),
}


def make_pki(d):
    """Certificates for TLS to Logstash, made with GnuTLS's certtool (gnutls-bin; Skip without it)
    in directory d. Returns {file name: path} for NAME.pem and NAME.key, NAME in:
      ca          the CA that signs the others
      server      Logstash's certificate: IP 127.0.0.1 and DNS localhost
      wrong-name  signed by ca, only for DNS elsewhere.example
      client      a client certificate (tls_www_client) for a Logstash that requires one
      other-ca    an unrelated self-signed CA
    Keys are ECDSA P-256 (instant to generate; certtool leaves out encryption_key, meaningless
    for an EC key)."""
    if not shutil.which("certtool"):
        raise Skip("certtool (gnutls-bin) is not installed")
    os.makedirs(d, exist_ok=True)

    def certtool(*args):
        p = subprocess.run(["certtool", "--no-text"] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check(p.returncode == 0, "certtool %s: exit %d\n%s"
              % (" ".join(args), p.returncode, p.stdout.decode("utf-8", "replace")[-1000:]))

    out = {}
    for name, (signer, template) in _PKI.items():  # the CAs come first
        key, pem, tmpl = (os.path.join(d, name + ext) for ext in (".key", ".pem", ".tmpl"))
        with open(tmpl, "w") as f:
            f.write(template + "expiration_days = 30\n")
        certtool("--generate-privkey", "--key-type", "ecdsa", "--curve", "secp256r1", "--outfile", key)
        if signer is None:
            certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", pem)
        else:
            certtool("--generate-certificate", "--load-privkey", key, "--template", tmpl, "--outfile", pem,
                     "--load-ca-certificate", out[signer + ".pem"], "--load-ca-privkey", out[signer + ".key"])
        out[name + ".pem"], out[name + ".key"] = pem, key
    return out


def server_tls_context(pki, cert="server", require_client=False):
    """A server-side ssl.SSLContext for Receiver(tls=...) presenting pki's CERT.pem/CERT.key; with
    require_client, a client certificate signed by pki's ca.pem is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert + ".pem"], pki[cert + ".key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki["ca.pem"])
    return ctx
