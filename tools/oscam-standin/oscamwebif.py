"""The OScam WebIF as far as the agent uses it (OSCAM.md §7): access checks, Digest auth, the
status/userstats/readerlist API, reinit, config save, restart/shutdown, files.  Output follows the
shape of /work/shared/fixtures/oscam/webif/.  No OScam code was used.  Simplifications are marked
"SIMPLIFICATION"; guesses beyond OSCAM.md "GUESS".

SIMPLIFICATION: every response closes the connection (real OScam keeps GET connections that ask
for Keep-Alive open); only the pages the agent needs are emulated, every other path answers
with a minimal status page (and a note on stderr).
"""

import email.utils
import hashlib
import html
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

import buildinfo as bi
import oscamconf as oc

AUTHREALM = "Forbidden"           # §7.2
NONCE_VALID_AFTER_USE = 15        # §7.2 AUTHNONCEVALIDSECS
NONCE_MAX_AGE = 120


class Request:
    def __init__(self, method, target, header_lines, body, ip):
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.header_lines = header_lines
        self.ip = ip
        self.params = {}
        self.multi = {}
        # §7.3: query string and urlencoded POST body form one list; "+" is a space; the last
        # value of a repeated name wins (multi-value fields keep all); at most 300 parameters.
        count = 0
        for source in (self.query, body if method == "POST" else ""):
            for pair in source.split("&"):
                if not pair or count >= 300:
                    continue
                count += 1
                name, _, value = pair.partition("=")
                name = urllib.parse.unquote_plus(name, errors="surrogateescape")
                value = urllib.parse.unquote_plus(value, errors="surrogateescape")
                self.params[name] = value
                self.multi.setdefault(name, []).append(value)

    def get(self, name, default=""):
        return self.params.get(name, default)


class Response:
    REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}

    def __init__(self, status=200, ctype="text/html", body="", headers=(), after=None):
        self.status = status
        self.ctype = ctype
        self.body = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
        self.headers = list(headers)
        self.after = after   # exit status for the worker once the answer has been sent

    def to_bytes(self):
        # Header order and values as in fixtures/oscam/webif/*.headers.
        now = email.utils.formatdate(usegmt=True)
        lines = ["HTTP/1.0 %d %s" % (self.status, self.REASONS.get(self.status, "Error")),
                 "Server: webserver/1.0", "Date: " + now]
        lines += self.headers
        lines += ["Content-Type: " + self.ctype,
                  "Cache-Control: no-store, no-cache, must-revalidate",
                  "Expires: Sat, 10 Jan 2000 05:00:00 GMT",
                  "Content-Length: %d" % len(self.body),
                  "Last-Modified: " + now]
        if self.status in (401, 403):
            lines.append('ETag: "753868328"')
        lines += ["Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body


def xml_escape(value):
    return html.escape(str(value), quote=True)


def md5hex(text):
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def ip_in_list(ip, spec):
    """httpallowed: comma list of IP or IP-IP (§3.2), IPv4 and IPv6."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        lo, _, hi = entry.partition("-")
        try:
            lo_a = ipaddress.ip_address(lo.strip())
            hi_a = ipaddress.ip_address(hi.strip()) if hi else lo_a
        except ValueError:
            continue
        if lo_a.version == addr.version and lo_a <= addr <= hi_a:
            return True
    return False


def is_loopback(ip):
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def fmt_duration(seconds):
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hms = "%02d:%02d:%02d" % (rest // 3600, rest % 3600 // 60, rest % 60)
    # GUESS: OSCAM.md only says "hh:mm:ss" or "d days …".
    return "%d days %s" % (days, hms) if days else hms


def iso_time(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))   # §7.5: zone as +hhmm


TOTALS_KEYS = """total_users total_active total_connected total_online total_disabled
total_expired total_readers total_active_readers total_connected_readers total_disabled_readers
total_cwok total_cwok_readers rel_cwok rel_cwok_readers total_cwcache rel_cwcache total_cwnok
total_cwnok_readers rel_cwnok total_cwtout total_cwtout_readers rel_cwnok_readers rel_cwtout
rel_cwtout_readers total_cwign rel_cwign total_ecm_min total_cw total_cwpos total_cwpos_readers
rel_cwpos rel_cwpos_readers total_cwneg total_cwneg_readers rel_cwneg rel_cwneg_readers
total_emok rel_emok total_emnok rel_emnok total_em total_cachexpush total_cachexgot
total_cachexhit rel_cachexhit total_cachesize total_cachesize_lg total_elenr total_eheadr
total_emmerroruk_readers total_emmerrorg_readers total_emmerrors_readers
total_emmerroruq_readers total_emmwrittenuk_readers total_emmwritteng_readers
total_emmwrittens_readers total_emmwrittenuq_readers total_emmskippeduk_readers
total_emmskippedg_readers total_emmskippeds_readers total_emmskippeduq_readers
total_emmblockeduk_readers total_emmblockedg_readers total_emmblockeds_readers
total_emmblockeduq_readers total_sum_all_readers_ecm total_sum_all_readers_emm""".split()
EMPTY_TOTALS = {"rel_cwign", "total_cachexpush", "total_cachexgot", "total_cachexhit",
                "rel_cachexhit", "total_cachesize", "total_cachesize_lg"}
SYSINFO_KEYS = """mem_cur_total mem_cur_free mem_cur_used mem_cur_buff mem_cur_cached
mem_cur_freem mem_cur_totalsw mem_cur_freesw mem_cur_usedsw mem_cur_shared oscam_vmsize
oscam_rsssize server_procs cpu_load_0 cpu_load_1 cpu_load_2 oscam_refresh oscam_cpu_user
oscam_cpu_sys oscam_cpu_sum""".split()
USERSTATS_XML_STATS = ["cwok", "cwnok", "cwignore", "cwtimeout", "cwcache", "cwtun",
                       "cwlastresptime", "emmok", "emmnok", "cwrate", "timeonchannel",
                       "expectsleep"]
USER_TOTALS_XML = """cwok cwnok cwignore cwtimeout cwcache cwtun usertotal userdisabled
userexpired useractive userconnected useronline readertotal readerdisabled readeractive
readerconnected cwokreaders cwnokreaders cwtimeoutreaders readertotalhead readertotallen
readertotalemmerroruk readertotalemmerrorg readertotalemmerrors readertotalemmerroruq
readertotalemmwrittenuk readertotalemmwritteng readertotalemmwrittens readertotalemmwrittenuq
readertotalemmskippeduk readertotalemmskippedg readertotalemmskippeds readertotalemmskippeduq
readertotalemmblockeduk readertotalemmblockedg readertotalemmblockeds readertotalemmblockeduq
readertotalsumofallecm readertotalsumofallemm""".split()

# §7.4: config.html part → oscam.conf section.
CONFIG_PARTS = {"": "global", "global": "global", "loadbalancer": "global", "camd33": "camd33",
                "camd35": "cs357x", "camd35tcp": "cs378x", "newcamd": "newcamd",
                "radegast": "radegast", "scam": "scam", "serial": "serial", "cccam": "cccam",
                "gbox": "gbox", "streamrelay": "streamrelay", "dvbapi": "dvbapi",
                "anticasc": "anticasc", "lcd": "lcd", "monitor": "monitor", "webif": "webif",
                "cache": "cache"}
# §7.4 files.html / part=files: the file names that are served.
FILES = ["oscam.version", "oscam.conf", "oscam.user", "oscam.server", "oscam.srvid",
         "oscam.srvid2", "oscam.services", "oscam.provid", "oscam.tiers", "oscam.ratelimit",
         "oscam.whitelist", "oscam.dvbapi", "oscam.fakecws", "oscam.twin", "constant.cw"]
READONLY_MSG = "WebIf is in readonly mode. No changes are possible!"   # GUESS: exact wording


def read_proc(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def sysinfo():
    def kb_table(path):   # "Name:   1234 kB" lines -> {name: MB}
        table = {}
        for line in read_proc(path).splitlines():
            name, _, value = line.partition(":")
            if value.split() and value.split()[0].isdigit():
                table[name] = int(value.split()[0]) / 1024.0
        return table

    mem, own = kb_table("/proc/meminfo"), kb_table("/proc/self/status")
    load = (read_proc("/proc/loadavg").split() + ["0"] * 5)[:5]
    total, free = mem.get("MemTotal", 0.0), mem.get("MemFree", 0.0)
    buff, cached = mem.get("Buffers", 0.0), mem.get("Cached", 0.0)
    stotal, sfree = mem.get("SwapTotal", 0.0), mem.get("SwapFree", 0.0)
    mb = lambda v: "%.2f MB" % v
    return dict(zip(SYSINFO_KEYS, [
        mb(total), mb(free), mb(total - free), mb(buff), mb(cached), mb(free + buff + cached),
        mb(stotal), mb(sfree), mb(stotal - sfree), mb(mem.get("Shmem", 0.0)),
        mb(own.get("VmSize", 0)), mb(own.get("VmRSS", 0)), load[3].partition("/")[2] or "0",
        load[0], load[1], load[2], "00:00:00h", "0.00 %", "0.00 %", "0.00 %"]))


class WebIf:
    def __init__(self, worker):
        self.w = worker
        self.sock = None
        self.ssl_ctx = None
        self.secret = secrets.token_hex(16)
        self.nonces = {}      # nonce -> [issued, first_use]
        self.thread = None

    # -- listener
    def start(self):
        w = self.w
        wc = w.webif_conf()
        https = wc.get("httpport", "").strip().startswith("+")
        port = w.webif_port()
        ip = wc.get("serverip") or w.conf["global"].get("serverip") or "127.0.0.1"
        if not is_loopback(ip):
            # Stand-in rule: never listen on anything but loopback.
            w.log("stand-in: refusing to bind serverip %s, using 127.0.0.1" % ip, "h")
            ip = "127.0.0.1"
        if https and not self.setup_tls():
            return
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        deadline = time.time() + oc.int_value(w.conf["global"].get("bindwait"), 120)
        while w.exit_code is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ip, port))
                sock.listen(64)
                break
            except OSError as e:
                sock.close()
                if time.time() > deadline:
                    w.log("HTTP Server: bind to %s:%d failed (%s)" % (ip, port, e.strerror), "h")
                    return
                w.log("HTTP Server: bind request failed (%s), waiting..." % e.strerror, "h")
                w.wait(1)
        else:
            return
        sock.settimeout(0.2)
        self.sock = sock
        w.log("%s Server running. ip=%s port=%d" % ("HTTPS" if https else "HTTP", ip, port), "h")
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def setup_tls(self):
        w = self.w
        wc = w.webif_conf()
        cert = wc.get("httpcert") or w.path("oscam.pem")
        if not os.path.exists(cert):
            if oc.int_value(wc.get("https_auto_create_cert"), 1) == 0:
                w.log("SSL: certificate %s not found" % cert, "h")
                return False
            w.log("SSL: creating self-signed certificate %s" % cert, "h")
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
                    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                    "-subj", "/CN=localhost", "-days", "3650",
                                    "-keyout", key, "-out", crt],
                                   check=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    fd = os.open(cert, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as out:   # cert and private key in one PEM
                        for part in (crt, key):
                            with open(part) as f:
                                out.write(f.read())
            except (OSError, subprocess.CalledProcessError) as e:
                w.log("SSL: cannot create certificate: %s" % e, "h")
                return False
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert)
        except (OSError, ssl.SSLError) as e:
            w.log("SSL: cannot load %s: %s" % (cert, e), "h")
            return False
        self.ssl_ctx = ctx
        return True

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.thread:
            self.thread.join(2)

    def accept_loop(self):
        while self.w.exit_code is None and self.sock:
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self.handle_conn, args=(conn, addr), daemon=True).start()

    def handle_conn(self, conn, addr):
        resp = None
        try:
            if bi.WEBIF_HANG:
                # Test knob: the connection is accepted but never answered.
                while self.w.exit_code is None:
                    time.sleep(0.1)
                return
            conn.settimeout(15)
            if self.ssl_ctx:
                conn = self.ssl_ctx.wrap_socket(conn, server_side=True)
            ip = addr[0]
            if ip.startswith("::ffff:") and "." in ip:
                ip = ip[7:]
            req = self.read_request(conn, ip)
            if req is None:
                return
            with self.w.lock:
                resp = self.dispatch(req)
            conn.sendall(resp.to_bytes())
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if resp is not None and resp.after is not None:
                self.w.request_exit(resp.after)   # restart/shutdown after the answer went out

    def read_request(self, conn, ip):
        limit = oc.int_value(self.w.webif_conf().get("httpmaxrequestsize"), 102400)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            data += chunk
            if len(data) > limit:
                return None   # §4.2 httpmaxrequestsize: bigger requests are dropped
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) < 2:
            return None
        method, target = parts[0], parts[1]
        # §7.3: the body is only read with the exact spelling "Content-Length: ".
        marker = head.find(b"Content-Length: ")
        if method == "POST" and marker >= 0:
            length = oc.int_value(head[marker + 16:marker + 32].decode("latin-1"))
            if length > limit:
                return None
            while len(body) < length:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                body += chunk
            body = body[:length]
        return Request(method, target, lines[1:], body.decode("utf-8", "surrogateescape"), ip)

    # -- access checks (§7.2)
    def opaque(self, ip):
        return md5hex(self.secret + ip)

    def new_nonce(self, ip):
        now = time.time()
        for n, (issued, _) in list(self.nonces.items()):
            if now - issued > NONCE_MAX_AGE:
                del self.nonces[n]
        nonce = secrets.token_hex(16)
        self.nonces[nonce] = [now, None]
        return nonce

    def challenge(self, ip, stale=False):
        header = ('WWW-Authenticate: Digest algorithm="MD5", realm="%s", qop="auth", '
                  'opaque="%s", nonce="%s"' % (AUTHREALM, self.opaque(ip), self.new_nonce(ip)))
        if stale:
            header += ", stale=true"   # GUESS: position of stale in the challenge
        return Response(401, body="Access denied.\n", headers=[header])

    def check_access(self, req):
        """Returns a refusal Response, or the extra headers of a successful answer."""
        w = self.w
        wc = w.webif_conf()
        if not ip_in_list(req.ip, wc.get("httpallowed", "")):
            w.log("unauthorized access from %s - invalid ip or dyndns" % req.ip, "h")
            return Response(403, body="Access denied.\n")
        user, pwd = wc.get("httpuser", ""), wc.get("httppwd", "")
        if not (user and pwd):
            return []
        prefix = "Authorization: Digest "   # parsed from this fixed offset, case-sensitive
        line = next((l for l in req.header_lines if l.startswith(prefix)), None)
        if line is None:
            return self.challenge(req.ip)
        f = {k: (q if q else v) for k, q, v in
             re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]*))', line[len(prefix):])}
        ha1 = md5hex("%s:%s:%s" % (user, AUTHREALM, pwd))
        ha2 = md5hex("%s:%s" % (req.method, f.get("uri", "")))
        expected = md5hex("%s:%s:%s:%s:auth:%s" % (ha1, f.get("nonce", ""), f.get("nc", ""),
                                                   f.get("cnonce", ""), ha2))
        if (f.get("username") != user or not f.get("nc") or not f.get("cnonce")
                or not f.get("uri", "").startswith(req.path)
                or not secrets.compare_digest(f.get("response", ""), expected)):
            w.log("unauthorized access from %s - invalid credentials" % req.ip, "h")
            return self.challenge(req.ip)
        entry = self.nonces.get(f.get("nonce", ""))
        now = time.time()
        if (entry is None or f.get("opaque") != self.opaque(req.ip)
                or now - entry[0] > NONCE_MAX_AGE):
            return self.challenge(req.ip, stale=True)
        if entry[1] is None:
            entry[1] = now
        elif now - entry[1] > NONCE_VALID_AFTER_USE:
            return self.challenge(req.ip, stale=True)
        return ['Authentication-Info: nextnonce="%s"' % self.new_nonce(req.ip)]

    # -- routing
    def dispatch(self, req):
        access = self.check_access(req)
        if isinstance(access, Response):
            return access
        page = req.path.lstrip("/")
        if page in ("oscamapi.html", "oscamapi.xml", "oscamapi.json"):
            resp = self.api(req, page)
        elif page == "userconfig.html":
            resp = self.page_userconfig(req)
        elif page == "config.html":
            resp = self.page_config(req)
        elif page == "shutdown.html":
            resp = self.page_shutdown(req)
        elif page == "readers.html":
            resp = self.page_readers(req)
        elif page == "files.html":
            resp = self.page_files(req)
        else:
            if page not in ("", "status.html"):
                self.w.warn("stand-in: %s is not emulated, answering with the status page" % page)
            resp = Response(body=self.html_page(req, "status", self.status_table()))
        resp.headers = access + resp.headers
        return resp

    # -- actions shared by pages and API
    def reinit_users(self, req):
        self.w.log("Refresh Accounts requested by WebIF from %s" % req.ip, "h")
        self.w.load_users()

    def reload_readers(self, req):
        self.w.log("Refresh Readers requested by WebIF from %s" % req.ip, "h")
        self.w.load_readers()
        self.w.load_users()   # §7.4: reload_readerdb() also reloads oscam.user

    # -- API (§7.5)
    def api(self, req, page):
        ctype = {"oscamapi.json": "text/javascript", "oscamapi.html": "text/xml",
                 "oscamapi.xml": "text/html"}[page]
        as_json = page == "oscamapi.json"
        part, action = req.get("part"), req.get("action")
        readonly = self.w.readonly()
        after = None
        if part == "userstats" and action == "reinit" and not readonly:
            self.reinit_users(req)
        if part == "readerlist" and action == "reloadreaders" and not readonly:
            self.reload_readers(req)
        if part == "status":
            body = self.json_status() if as_json else self.xml_status()
        elif part == "userstats":
            body = self.json_userstats(req) if as_json else self.xml_userstats(req)
        elif part == "readerlist":
            body = self.json_readerlist() if as_json else self.xml_readerlist()
        elif part == "shutdown":   # always XML; blocked by readonly (§7.6)
            if readonly:
                inner = "\t\t<error>webif readonly mode</error>\n"
            elif action.lower() in ("restart", "shutdown"):
                inner = "\t\t<confirm>%s</confirm>\n" % action.lower()
                after = bi.EXIT_RESTART if action.lower() == "restart" else 0
            else:
                inner = "\t\t<error>no valid action</error>\n"   # GUESS
            body = self.xml_wrap(inner)
        elif part == "failban":
            body = self.xml_wrap("\t<failbanlist>\n\n\t</failbanlist>\n")
        elif part == "files":
            body = self.xml_wrap(self.api_files(req))
        else:
            body = self.xml_wrap("\t\t<error>part not found</error>\n")
        callback = req.get("callback")
        if as_json and callback and body.startswith("{"):
            body = "%s(%s);" % (callback, body)
        return Response(ctype=ctype, body=body, after=after)

    def header_fields(self):
        now = time.time()
        return {"version": bi.VERSION, "revision": "", "commit": bi.COMMIT,
                "starttime": iso_time(self.w.start), "uptime": int(now - self.w.start),
                "readonly": "1" if self.w.readonly() else "0"}

    def xml_wrap(self, inner):
        h = self.header_fields()
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<oscam version="%s" revision="%s" commit="%s" starttime="%s" uptime="%d" '
                'readonly="%s">\n\n%s</oscam>\n\n'
                % (xml_escape(h["version"]), h["revision"], xml_escape(h["commit"]),
                   h["starttime"], h["uptime"], h["readonly"], inner))

    def counts(self):
        users = self.w.users
        disabled = sum(1 for a in users if oc.account_disabled(a))
        expired = sum(1 for a in users if oc.account_expired(a) and not oc.account_disabled(a))
        readers = self.w.readers
        rdis = sum(1 for r in readers if oc.int_value(r.get("enable", "1")) == 0)
        return {"users": len(users), "disabled": disabled, "expired": expired,
                "active": len(users) - disabled - expired, "readers": len(readers),
                "rdisabled": rdis, "ractive": len(readers) - rdis}

    def json_doc(self, kind, extra):
        """The JSON header of §7.5, filled the way each part fills it in the fixtures."""
        c = self.counts()
        h = self.header_fields()
        now = time.time()
        sys_uptime = oc.int_value(read_proc("/proc/uptime").split(".")[0])
        totals = {k: ("" if k in EMPTY_TOTALS else "0.00" if k.startswith("rel_") else "0")
                  for k in TOTALS_KEYS}
        users = {"total_users": c["users"], "total_active": c["active"], "total_connected": 0,
                 "total_online": 0, "total_disabled": c["disabled"],
                 "total_expired": c["expired"]}
        readers = {"total_readers": c["readers"], "total_active_readers": c["ractive"],
                   "total_connected_readers": 0, "total_disabled_readers": c["rdisabled"]}
        for group, filled in ((users, kind != "readerlist"), (readers, kind != "userstats")):
            for k, v in group.items():
                totals[k] = str(v) if filled else ""
        oscam = {"version": h["version"], "revision": "", "commit": h["commit"],
                 "starttime": h["starttime"], "apiruntime": str(h["uptime"]),
                 "runtime": fmt_duration(now - self.w.start), "uptime": fmt_duration(sys_uptime),
                 "curdate": time.strftime("%d.%m.%y"), "curtime": time.strftime("%H:%M:%S"),
                 "readonly": h["readonly"],
                 "piconenabled": "" if kind == "userstats" else "0",
                 "srvidfile": self.srvidfile() if kind == "status" else "",
                 "lbdefined": "1", "failbannotifier": "0",
                 "sysinfo": sysinfo() if kind == "status" else dict.fromkeys(SYSINFO_KEYS, ""),
                 "totals": totals}
        oscam.update(extra)
        return json.dumps({"oscam": oscam}, indent=4, ensure_ascii=False) + "\n"

    def srvidfile(self):
        return "oscam.srvid2" if os.path.exists(self.w.path("oscam.srvid2")) else "oscam.srvid"

    def clients(self):
        """Status clients: the server thread, this http client, one per enabled reader."""
        up = str(int(time.time() - self.w.start))
        base = [("s", "root", "", "server", "127.0.0.1", "0", "OK", "0"),
                ("h", "root", "", "http", "127.0.0.1", "0", "OK", "0")]
        for r in self.w.readers:
            if oc.int_value(r.get("enable", "1")) == 0:
                continue
            proto = r.get("protocol", "")
            kind = "p" if proto in oc.NETWORK_PROTOCOLS else "r"
            desc = "(%s)" % r["description"] if r.get("description") else ""
            port = r.get("device", "").split(",")[1] if r.get("device", "").count(",") else "0"
            base.append((kind, r.get("label", ""), desc, proto, "", port, "UNKNOWN", "-1"))
        return [dict(zip(("type", "name", "desc", "protocol", "ip", "port", "status", "au"), c),
                     thid="id_0x%012x" % (0x557c8d830000 + 0x1000 * i), online=up,
                     idle="0" if c[0] == "h" else up)
                for i, c in enumerate(base)]

    def json_status(self):
        clients = []
        login = iso_time(self.w.start)
        for c in self.clients():
            reader = c["type"] in ("p", "r")
            clients.append({
                "thid": c["thid"], "type": c["type"], "name_enc": "",
                "rname_enc": c["name"] if reader else "", "upicmissing": "", "desc": c["desc"],
                "protocol": c["protocol"], "protocolext": "", "protoicon": "", "au": c["au"],
                "aufmt": c["name"] if reader else "",
                "request": {"caid": "0000", "provid": "000000", "srvid": "0000",
                            "ecmtime": "1" if reader else "", "ecmhistory": "", "answered": "",
                            "picon": "0000_0000" if reader else "", "chprovider": "",
                            "chname": "unknown" if reader else "", "chantitle": "",
                            "msvalue": "", "lbvalue": "no data" if reader else "",
                            "$": "unknown" if reader else ""},
                "times": {"login": login,
                          "loginfmt": time.strftime("%d.%m.%y  %H:%M:%S",
                                                    time.localtime(self.w.start)),
                          "online": c["online"], "idle": c["idle"]},
                "connection": {"ip": c["ip"], "port": c["port"], "status": c["status"],
                               "totentitlements": "", "entitlements": [], "$": c["status"]}})
        servers = sum(1 for c in clients if c["type"] in ("s", "h"))
        proxies = sum(1 for c in clients if c["type"] == "p")
        locals_ = sum(1 for c in clients if c["type"] == "r")
        status = {"ucs": "0", "uca": "0", "ucac": "", "cfgh": "25", "scs": str(servers),
                  "sch": "0", "sca": str(servers), "mcs": "0", "mca": "0",
                  "rcc": str(locals_), "rca": str(locals_), "rco": str(locals_),
                  "pcc": str(proxies), "pca": str(proxies), "pco": str(proxies),
                  "client": clients}
        return self.json_doc("status", {"status": status})

    def xml_status(self):
        rows = []
        login = iso_time(self.w.start)
        for c in self.clients():
            reader = c["type"] in ("p", "r")
            rows.append(
                '      <client type="%s" name="%s" desc="%s" protocol="%s" protocolext="" au="%s"'
                ' thid="%s">\n'
                '         <request caid="0000" provid="000000" srvid="0000" ecmtime="%s" '
                'ecmhistory="" answered="">%s</request>\n'
                '         <times login="%s" online="%s" idle="%s"></times>\n'
                '         <connection ip="%s" port="%s">%s</connection>\n'
                '      </client>\n'
                % (c["type"], xml_escape(c["name"]), xml_escape(c["desc"]),
                   xml_escape(c["protocol"]), c["au"], c["thid"], "1" if reader else "",
                   "unknown" if reader else "", login, c["online"], c["idle"], c["ip"],
                   c["port"], c["status"]))
        return self.xml_wrap("\t<status>\n%s\n\t</status>\n\t<log><![CDATA[\n   \n\t]]></log>"
                             % "".join(rows))

    def user_state(self, acc):
        if oc.account_disabled(acc):
            return "offline (disabled)", "disabled"
        if oc.account_expired(acc):
            return "offline (expired)", "expired"   # GUESS: by analogy with "disabled"
        return "offline", "offline"

    def selected_users(self, req):
        label = req.get("label")
        return [a for a in self.w.users if not label or a.get("user") == label]

    def json_userstats(self, req):
        users = []
        for acc in self.selected_users(req):
            status, classname = self.user_state(acc)
            stats = {k: "0" for k in ("cwok", "cwnok", "cwignore", "cwtimeout", "cwcache",
                                      "cwtun")}
            stats.update({"idle": "", "cwlastresptime": "", "cwlastresptimems": "",
                          "emmok": "0", "emmnok": "0", "cwrate": "0.00", "cwrate2": "",
                          "cascusercomb": "0/0", "timeonchannel": "", "expectsleep": "",
                          "n_requ_m": "0", "cwccycview": "", "cwccyclechecked": "",
                          "cwcycleok": "", "cwcyclenok": "", "cwcycleign": ""})
            stats = {k: stats[k] for k in (
                "idle cwok cwnok cwignore cwtimeout cwcache cwtun cwlastresptime "
                "cwlastresptimems emmok emmnok cwrate cwrate2 cascusercomb timeonchannel "
                "expectsleep n_requ_m cwccycview cwccyclechecked cwcycleok cwcyclenok "
                "cwcycleign").split()}
            # The real JSON carries no plain user name, only "id_" + MD5(name).
            users.append({"user": {
                "usermd5": "id_" + md5hex(acc.get("user", "")), "status": status,
                "classname": classname, "ip": "", "unotify": "", "protocol": "",
                "protoicon": "", "prototitle": "", "protosort": "", "grpviewid": "",
                "groups": acc.get("group", ""), "lastchannel": "", "lastchanneltitle": "",
                "lastchannelsort": "", "expdate": acc.get("expdate", ""), "expview": "exp",
                "lca": "", "lcb": "", "stats": stats}})
        return self.json_doc("userstats", {"users": users})

    def xml_userstats(self, req):
        rows = []
        for acc in self.selected_users(req):
            status, _ = self.user_state(acc)
            stats = "".join("                <%s>%s</%s>\n" % (
                k, "0.00" if k == "cwrate" else "" if k in (
                    "cwlastresptime", "timeonchannel", "expectsleep") else "0", k)
                for k in USERSTATS_XML_STATS)
            rows.append('        <user name="%s" status="%s" ip="" protocol="">\n'
                        '            <stats>\n%s            </stats>\n        </user>\n'
                        % (xml_escape(acc.get("user", "")), status, stats))
        c = self.counts()
        values = {"usertotal": c["users"], "userdisabled": c["disabled"],
                  "userexpired": c["expired"], "useractive": c["active"]}
        totals = "".join("\t\t<%s>%s</%s>\n" % (k, values.get(k, "" if k.startswith(
            "reader") and k[6:] in ("total", "disabled", "active", "connected") else "0"), k)
            for k in USER_TOTALS_XML)
        return self.xml_wrap("\t<users>\n%s\n\t</users>\n\t<totals>\n%s\t</totals>\n"
                             % ("".join(rows), totals))

    def reader_rows(self):
        for r in self.w.readers:
            kind = "p" if r.get("protocol", "") in oc.NETWORK_PROTOCOLS else "r"
            enabled = "0" if oc.int_value(r.get("enable", "1")) == 0 else "1"
            yield r.get("label", ""), kind, enabled

    def xml_readerlist(self):
        # The fixture shows protocol="" for offline readers.
        rows = "".join('\t\t<reader label="%s" protocol="" type="%s" enabled="%s"></reader>\n'
                       % (xml_escape(label), kind, enabled)
                       for label, kind, enabled in self.reader_rows())
        return self.xml_wrap("    <readers>\n%s\n    </readers>\n" % rows)

    def json_readerlist(self):
        readers = []
        for label, kind, enabled in self.reader_rows():
            readers.append({
                "labelmd5": "id_" + md5hex(label), "label": label,
                "classname": "enabledreader" if enabled == "1" else "disabledreader",
                "ip": "", "status": "offline", "protocol": "", "protoicon": "",
                "prototitle": "", "protosort": "", "type": kind, "enabled": enabled,
                "last_gsms": "",
                "stats": {"ecmsok": "0", "ecmsokrel": " (0.00 %)", "ecmsoklg": "",
                          "ecmsoklgrel": "", "ecmsnok": "0", "ecmsnokrel": " (0.00 %)",
                          "ecmstout": "0", "ecmstoutrel": " (0.00 %)", "ecmsfiltered": "0 / 0",
                          "emmerror": "0 / 0 / 0 / 0", "emmwritten": "0 / 0 / 0 / 0",
                          "emmskipped": "0 / 0 / 0 / 0", "emmblocked": "0 / 0 / 0 / 0",
                          "lbweight": "100"}})
        return self.json_doc("readerlist", {"readers": readers})

    def file_path(self, name):
        if name not in FILES:
            return None
        if name == "oscam.version":
            return self.w.versionfile
        return self.w.path(name)

    def save_file(self, req, path):
        """§7.4 files.html Save: fopen("w") in place (no .tmp/.bak), CRLF→LF, then reload what
        OScam reloads (here: oscam.user).  Not blocked by readonly."""
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(req.get("filecontent").replace("\r\n", "\n"))
        if req.get("file") == "oscam.user":
            self.w.load_users()

    def api_files(self, req):
        name = req.get("file")
        path = self.file_path(name)
        if path is None or not os.path.exists(path):
            return ('\t<file filename="null" writable="0">\n'
                    '\t<![CDATA[File does not exist or no file selected!]]>\n\t</file>\n')
        shown = name
        if req.get("action") == "Save" and name != "oscam.version":
            self.save_file(req, path)
            shown = name + " saved!"
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines(keepends=True)
        flt = req.get("filter")
        content = "".join(l for l in lines if not flt or flt in l)
        return ('\t<file filename="%s" writable="0">\n\t<![CDATA[%s]]>\n\t</file>\n'
                % (xml_escape(shown), content))

    # -- HTML pages (the shape of the fixtures, without the styling)
    def html_page(self, req, selected, content, script=""):
        w = self.w
        menu = "".join('\t\t\t\t<LI CLASS="%s"><A HREF="%s.html">%s</A></LI>\n'
                       % ("menu_selected" if name == selected else "menu", name, title)
                       for name, title in (("status", "Status"), ("config", "Config"),
                                           ("readers", "Readers"), ("userconfig", "Users"),
                                           ("files", "Files"), ("shutdown", "Restart")))
        now = time.time()
        return (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN"\n'
            '   "http://www.w3.org/TR/html4/loose.dtd">\n<HTML>\n<HEAD>\n'
            '\t<title>OSCam %s</title>\n'
            '\t<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
            '\t<meta name="robots" content="noindex,nofollow">\n%s'
            '</HEAD>\n<BODY>\n<DIV ID="wrapper"><a name="_top"></a> <!-- Start wrapper -->\n'
            '\t<DIV ID="content"> <!-- Start content -->\n'
            '\t\t<DIV ID="main">\n\t\t\t<UL ID="mainmenu">\n%s\t\t\t</UL>\n\t\t</DIV>\n'
            '%s\n\t</DIV> <!-- End content -->\n'
            '\t<DIV CLASS="footer" ID="footer">\n\t\t<UL CLASS="textfooter">\n'
            '\t\t\t<LI><B>Current Time:</B><span id="curtime"> %s </span><B>Start Time:</B> '
            '%s <B>OSCam Run Time:</B><span id="runtime"> %s</span></LI>\n'
            '\t\t\t<LI><B>Process ID:</B> %d <B>Access from:</B> %s</LI>\n'
            '\t\t\t<LI><B>Version:</B> %s <B>Git:</B> %s <B>Compiler:</B> %s</LI>\n'
            '\t\t</UL>\n\t</DIV>\n</DIV> <!-- End wrapper -->\n</BODY>\n</HTML>\n'
            % (bi.VERSION, script, menu, content,
               time.strftime("%d.%m.%y | %H:%M:%S", time.localtime(now)),
               time.strftime("%d.%m.%y | %H:%M:%S", time.localtime(w.start)),
               fmt_duration(now - w.start), os.getppid(), xml_escape(req.ip), bi.VERSION,
               bi.COMMIT, bi.COMPILER))

    @staticmethod
    def message(text):
        return '<DIV CLASS="message">%s</DIV>\n' % xml_escape(text) if text else ""

    def status_table(self):
        rows = "".join('\t\t<TR CLASS="%s"><TD>%s</TD><TD>%s</TD><TD>%s</TD><TD>%s</TD></TR>\n'
                       % (c["type"], c["type"], xml_escape(c["name"]), xml_escape(c["protocol"]),
                          c["status"]) for c in self.clients())
        return '\t<TABLE CLASS="status">\n%s\t</TABLE>' % rows

    def page_userconfig(self, req):
        msg = ""
        if req.get("action") == "reinit":
            if self.w.readonly():
                msg = READONLY_MSG   # §7.6: blocked, nothing reloaded
            else:
                self.reinit_users(req)
        rows = []
        for acc in self.w.users:
            name = acc.get("user", "")
            status, classname = self.user_state(acc)
            rows.append(
                '\t\t<TR CLASS="%s" id="id_%s" nopoll="">\n'
                '\t\t\t<TD CLASS="usercol1" data-sort-value="%s"><A HREF="user_edit.html?'
                'user=%s">%s</A></TD>\n'
                '\t\t\t<TD CLASS="usercol2">%s<BR></TD>\n'
                '\t\t\t<TD CLASS="usercol5 "><DIV CLASS="groups" TITLE="%s">%s</DIV></TD>\n'
                '\t\t</TR>\n'
                % (classname, md5hex(name), xml_escape(name), urllib.parse.quote(name),
                   xml_escape(name), status, xml_escape(acc.get("group", "")),
                   xml_escape(acc.get("group", ""))))
        content = ('%s\t<TABLE ID="dataTable" CLASS="users">\n\t<TBODY class="content">\n%s'
                   '\t</TBODY>\n\t</TABLE>' % (self.message(msg), "".join(rows)))
        return Response(body=self.html_page(req, "userconfig", content))

    def page_config(self, req):
        part = req.get("part")
        section = CONFIG_PARTS.get(part, "global")
        if section in oc.NOT_COMPILED:
            section = "global"   # GUESS: pages of modules not compiled in do not exist
        msg = ""
        if req.get("action") == "execute":
            if self.w.readonly():
                msg = READONLY_MSG
            else:
                # §7.4: config_set() for every parameter, in memory at once, then a rewrite.
                for key, value in req.params.items():
                    key = oc.ascii_lower(key)
                    if key in ("part", "action") or not oc.known(oc.CONF_KEYS[section], key):
                        continue
                    if key == "services":
                        value = ",".join(req.multi[key])
                    oc.set_value(self.w.conf, section, key, oc.trim(value))
                try:
                    self.w.save_conf()
                    msg = "Configuration was saved."
                except OSError as e:
                    msg = "Write Config failed: %s" % e.strerror
        fields = "".join('\t\t\t<TR><TD><A>%s:</A></TD><TD><input name="%s" type="text" '
                         'value="%s"></TD></TR>\n' % (k, k, xml_escape(v))
                         for k, v in self.w.conf.get(section, {}).items())
        content = ('%s\t<form action="config.html" method="get">\n'
                   '\t\t<input name="action" type="hidden" value="execute">\n'
                   '\t\t<input name="part" type="hidden" value="%s">\n'
                   '\t\t<TABLE CLASS="config">\n%s\t\t</TABLE>\n\t</form>'
                   % (self.message(msg), xml_escape(part or "global"), fields))
        return Response(body=self.html_page(req, "config", content))

    def page_shutdown(self, req):
        action = req.get("action").lower()   # §7.4: case-insensitive; NOT blocked by readonly
        if action not in ("restart", "shutdown"):
            content = ('\t<form action="shutdown.html" method="get">\n'
                       '\t\t<input type="submit" name="action" value="Shutdown">\n'
                       '\t\t<input type="submit" name="action" value="Restart">\n\t</form>')
            return Response(body=self.html_page(req, "shutdown", content))
        self.w.log("%s requested by WebIF from %s" % (action.capitalize(), req.ip), "h")
        script = ('\t<script type="text/javascript">var count = 10;var redirect="./status.html";'
                  'function countDown(){if (count <=0){window.location = redirect;}else{count--;'
                  'document.getElementById("timer").innerHTML = "<BR><P CLASS=\'text-large-red\'>'
                  'OSCam Restart/Shutdown in " +count+ " Seconds</P><BR><BR>";'
                  'setTimeout("countDown()", 1000)}}</script>\n')
        content = '\t<SPAN ID="timer"><SCRIPT type="text/javascript">countDown();</SCRIPT></SPAN>'
        return Response(body=self.html_page(req, "shutdown", content, script),
                        after=bi.EXIT_RESTART if action == "restart" else 0)

    def page_readers(self, req):
        msg = ""
        if req.get("action") == "reloadreaders":
            if self.w.readonly():
                msg = READONLY_MSG
            else:
                self.reload_readers(req)
        rows = "".join('\t\t<TR CLASS="%s"><TD>%s</TD></TR>\n'
                       % ("enabledreader" if enabled == "1" else "disabledreader",
                          xml_escape(label)) for label, _, enabled in self.reader_rows())
        content = '%s\t<TABLE CLASS="readers">\n%s\t</TABLE>' % (self.message(msg), rows)
        return Response(body=self.html_page(req, "readers", content))

    def page_files(self, req):
        name = req.get("file")
        path = self.file_path(name)
        msg = ""
        text = ""
        if path and os.path.exists(path):
            if req.get("action") == "Save" and name != "oscam.version":
                self.save_file(req, path)
                msg = "%s saved!" % name
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        content = ('%s\t<form action="files.html" method="post">\n'
                   '\t\t<input name="file" type="hidden" value="%s">\n'
                   '\t\t<TEXTAREA NAME="filecontent" CLASS="editor">%s</TEXTAREA>\n'
                   '\t\t<input type="submit" name="action" value="Save">\n\t</form>'
                   % (self.message(msg), xml_escape(name), xml_escape(text)))
        return Response(body=self.html_page(req, "files", content))
