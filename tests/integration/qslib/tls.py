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
    return _make(d, {name: (signer, template + "expiration_days = 30\n") for name, (signer, template) in _PKI.items()})


def _certtool(*args):
    p = subprocess.run(["certtool", "--no-text"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    check(p.returncode == 0, "certtool %s: exit %d\n%s"
          % (" ".join(args), p.returncode, p.stdout.decode("utf-8", "replace")[-1000:]))


def _make(d, pki):
    """Each NAME: (signer or None, certtool template) of pki, signers first, into d."""
    if not shutil.which("certtool"):
        raise Skip("certtool (gnutls-bin) is not installed")
    os.makedirs(d, exist_ok=True)
    out = {}
    for name, (signer, template) in pki.items():
        key, pem, tmpl = (os.path.join(d, name + ext) for ext in (".key", ".pem", ".tmpl"))
        with open(tmpl, "w") as f:
            f.write(template)
        _certtool("--generate-privkey", "--key-type", "ecdsa", "--curve", "secp256r1", "--outfile", key)
        if signer is None:
            _certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", pem)
        else:
            _certtool("--generate-certificate", "--load-privkey", key, "--template", tmpl, "--outfile", pem,
                      "--load-ca-certificate", out[signer + ".pem"], "--load-ca-privkey", out[signer + ".key"])
        out[name + ".pem"], out[name + ".key"] = pem, key
    return out


_CLIENT = 'tls_www_client\nsigning_key\n'
_LIVE = 'expiration_days = 30\n'


def make_client_pki(d):
    """Client certificates for quicstashd --client-ca (mTLS tenants), in d. Returns {file: path} for
    NAME.pem and NAME.key, NAME in:
      client-ca   the CA to give --client-ca
      other-ca    an unrelated CA
      globex      CN=globex-edge, signed by client-ca
      initech     CN=whatever with DNS SAN edge.initech.example, signed by client-ca
      expired     CN=globex-edge, signed by client-ca, expired in 2020
      foreign     CN=globex-edge, signed by other-ca
      nobody      CN=nobody-here, signed by client-ca (no tenant has it)"""
    ca = 'ca\ncert_signing_key\n' + _LIVE
    return _make(d, {
        "client-ca": (None, 'cn = "quicstash client CA"\n' + ca),
        "other-ca": (None, 'cn = "unrelated client CA"\n' + ca),
        "globex": ("client-ca", 'cn = "globex-edge"\n' + _CLIENT + _LIVE),
        "initech": ("client-ca", 'cn = "whatever"\ndns_name = "edge.initech.example"\n' + _CLIENT + _LIVE),
        "expired": ("client-ca", 'cn = "globex-edge"\n' + _CLIENT + 'activation_date = "2020-01-01 00:00:00"\n'
                    'expiration_date = "2020-02-01 00:00:00"\n'),
        "foreign": ("other-ca", 'cn = "globex-edge"\n' + _CLIENT + _LIVE),
        "nobody": ("client-ca", 'cn = "nobody-here"\n' + _CLIENT + _LIVE),
    })


def server_tls_context(pki, cert="server", require_client=False):
    """A server-side ssl.SSLContext for Receiver(tls=...) presenting pki's CERT.pem/CERT.key; with
    require_client, a client certificate signed by pki's ca.pem is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert + ".pem"], pki[cert + ".key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki["ca.pem"])
    return ctx
