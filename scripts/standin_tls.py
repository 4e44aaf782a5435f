"""The HTTPS server of the end-to-end tests' stand-ins (scripts/fake-splice.py, scripts/fake-kube-api.py):
stdlib http.server + ssl, one thread per connection, TLS 1.2 or later with the given certificate.

    server = standin_tls.TLSServer((host, port), Handler, cert_pem, key_pem, log)
    standin_tls.announce(server, port_file, ready_line)   # once it accepts connections
    standin_tls.serve(server)                             # until killed

The TLS handshake runs on the connection's own thread, so a client that connects and stalls, or
fails the handshake (one that does not trust the CA: the tests make some), never blocks the accept
loop; each failed handshake is logged as "TLS handshake failed: <reason>".

The stand-ins run as `python3 scripts/NAME.py`, which puts scripts/ first on sys.path; they also
add their own folder themselves, so that this module is found however they are started.
"""
import os
import ssl
import sys
from http.server import ThreadingHTTPServer


def tls_context(cert, key):
    """A server-side context with the certificate chain and key (PEM files), TLS 1.2 at least."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class TLSServer(ThreadingHTTPServer):
    """A threading HTTPS server; `log(message)` receives handshake failures and connection errors."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, cert, key, log):
        self.ctx = tls_context(cert, key)   # before binding: a bad certificate fails at once
        self.log = log
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log("TLS handshake failed: %s" % (e,))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        self.log("connection error: %s" % (sys.exc_info()[1],))


def announce(server, port_file, ready_line):
    """Writes the port to port_file (atomically, if given), then prints ready_line ("{port}" is
    replaced by the port) on standard output. Returns the port."""
    port = server.server_address[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, port_file)
    print(ready_line.replace("{port}", str(port)), flush=True)
    return port


def serve(server):
    """Serves until interrupted, then closes the listening socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
