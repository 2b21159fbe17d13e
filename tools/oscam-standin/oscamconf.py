"""OScam config files for the stand-in: parser (OSCAM.md §3.1) and oscam.conf writer (§3.3).

Written from the behaviour described in /work/shared/OSCAM.md and the captured fixtures only;
no OScam code was used.

SIMPLIFICATION (key order): OScam writes the keys of a section in the order of its internal key
table.  We do not have that table, so the writer uses the relative order observed in
fixtures/oscam/webif/oscam.conf.after-webif-save (KEY_ORDER_HINTS) and then the remaining keys in
the order in which they were first loaded.  Likewise only the few defaults that OSCAM.md or the
fixtures reveal (DEFAULTS) are dropped on a save; other keys equal to their default stay.
"""

import os
import shutil
import time

# §4.1: the section table; its order is the write order.
CONF_SECTIONS = ["global", "anticasc", "cache", "lcd", "camd33", "cs357x", "cs378x", "newcamd",
                 "radegast", "serial", "gbox", "cccam", "pandora", "scam", "streamrelay",
                 "dvbapi", "monitor", "webif"]

# Sections whose module is "not compiled in" in the build we pretend to be (the feature list in
# oscam.version: anti-cascading, LCD, camd 3.3x, radegast, scam, serial, Pandora, Streamrelay
# all "no").  §3.1: they are ignored at load time and vanish on the next save.
NOT_COMPILED = {"anticasc", "lcd", "camd33", "radegast", "scam", "serial", "pandora",
                "streamrelay"}


def _keys(text):
    return set(text.split())


# §4.2 key lists.  Entries ending in '*' are prefixes.
CONF_KEYS = {
    "global": _keys("""
        logfile disablelog loghistorylines initial_debuglevel sysloghost syslogport
        logduplicatelines maxlogsize usrfile disableuserfile usrfileflag mailfile disablemail
        cwlogdir emmlogdir ecmfmt pidfile serverip nice netprio bindwait sleep clienttimeout
        fallbacktimeout fallbacktimeout_percaid clientmaxidle unlockparental waitforcards
        waitforcards_extra_delay preferlocalcards readerrestartseconds dropdups block_same_ip
        block_same_name failbantime failbancount suppresscmd08 getblockemmauprovid double_check
        double_check_caid disablecrccws disablecrccws_only_for reload_useraccounts reload_readers
        reload_provid reload_services_ids reload_tier_ids reload_fakecws reload_ac_stat
        reload_log lb_mode lb_save lb_savepath lb_nbest_readers lb_nfb_readers lb_min_ecmcount
        lb_max_ecmcount lb_reopen_seconds lb_reopen_invalid lb_force_reopen_always
        lb_retrylimit lb_retrylimits lb_stat_cleanup lb_max_readers lb_auto_betatunnel*
        lb_nbest_percaid lb_noproviderforcaid lb_auto_timeout*"""),
    "anticasc": _keys("""
        enabled numusers sampletime samples penalty aclogfile fakedelay denysamples
        acosc_enabled acosc_max_ecms_per_minute acosc_max_active_sids acosc_zap_limit
        acosc_penalty acosc_penalty_duration acosc_delay"""),
    "cache": _keys("""
        delay max_time max_hit_time wait_time cacheex_mode1_delay cacheexenablestats
        cacheex_cw_check wait_until_ctimeout csp_port csp_serverip csp_ecm_filter
        csp_allow_request csp_allow_reforward csp_block_fakecws cwcycle_*"""),
    "lcd": _keys("enablelcd lcd_outputpath lcd_hideidle lcd_writeintervall"),
    "camd33": _keys("port serverip nocrypt passive key"),
    "cs357x": _keys("port serverip suppresscmd08"),
    "cs378x": _keys("port serverip suppresscmd08"),
    "newcamd": _keys("port serverip allowed key keepalive mgclient"),
    "radegast": _keys("port serverip allowed user"),
    "serial": _keys("device"),
    "gbox": _keys("""
        port hostname my_password gbox_reconnect my_vers my_cpu_api gsms_disable dis_attack_txt
        log_hello tmp_dir ignore_peer accept_remm_peer block_ecm proxy_card gbox_save_gsms
        gbox_msg_type gbox_dest_peers gbox_msg_txt ccc_reshare"""),
    "cccam": _keys("""
        port serverip nodeid version reshare reshare_mode ignorereshare forward_origin_card
        stealth updateinterval minimizecards keepconnected recv_timeout"""),
    "pandora": _keys("pand_port pand_srvid pand_usr pand_pass pand_ecm pand_skip_send_dw "
                     "pand_allowed"),
    "scam": _keys("port serverip allowed"),
    "streamrelay": _keys("""
        stream_relay_enabled stream_relay_port stream_relay_user stream_relay_ctab
        stream_source_host stream_client_source_host stream_source_port stream_source_auth_user
        stream_source_auth_password stream_relay_buffer_time stream_relay_reconnect_count
        stream_display_client stream_reuse_client stream_hide_client"""),
    "dvbapi": _keys("""
        enabled au pmt_mode request_mode listen_port serverip delayer ecminfo_file ecminfo_type
        user read_sdt write_sdt_prov extended_cw_api demuxer_fix boxtype services"""),
    "monitor": _keys("port serverip nocrypt aulow monlevel hideclient_to"),
    "webif": _keys("""
        httpport serverip httpuser httppwd httpallowed httpdyndns httpreadonly httpsavefullcfg
        httpoverwritebakfile httpcert https_auto_create_cert https_force_secure_mode httprefresh
        httppollrefresh httpmaxrequestsize httphideidleclients httphelplang httposcamlabel
        http_status_log aulow hideclient_to httpcss httpjscript httpscript httptpl
        httppiconpath httplocale http_prepend_embedded_css httphidetype httpshowpicons
        httppiconsize httpshowmeminfo httpshowuserinfo httpshowreaderinfo httpshowcacheexinfo
        httpshowecminfo httpshowloadinfo httpemmuclean httpemmsclean httpemmgclean
        http_extern_jquery"""),
}

# §5, in write order.
ACCOUNT_KEYS = _keys("""
    disabled user pwd description hostname caid uniq sleepsend failban monlevel sleep
    suppresscmd08 umaxidle keepalive au emmreassembly expdate allowedprotocols allowedtimeframe
    betatunnel group services preferlocalcards ident chid class max_connections cacheex
    cacheex_maxhop cacheex_ecm_filter cacheex_drop_csp cacheex_allow_request no_wait_time
    cacheex_allow_filter cacheex_block_fakecws disablecrccacheex disablecrccacheex_only_for
    cccmaxhops cccreshare cccignorereshare cccstealth fakedelay numusers penalty acosc_*
    lb_nbest_readers lb_nfb_readers lb_nbest_percaid cwc_disable cacheex_*""")

# §6.1/§6.2.
READER_KEYS = _keys("""
    label description enable protocol device group caid ident chid class services
    lb_whitelist_services fallback fallback_percaid localcards inactivitytimeout
    reconnecttimeout reconnectdelay keepalive disableserverfilter connectoninit resetcycle
    audisabled auprovid emmcache blockemm-* saveemm-* readnano savenano blocknano
    ecmwhitelist ecmheaderwhitelist ecmnotfoundlimit ratelimitecm ratelimittime ecmunique
    srvidholdtime cooldown maxparallel parallelfactor paralleltimeout dropbadcws disablecrccws
    disablecrccws_only_for lb_weight lb_force_fallback cccversion cccmaxhops cccmindown
    ccckeepalive cccreshare cccreconnect ccchop cacheex* detect mhz cardmhz autospeed
    smargopatch sc8in1_dtrrts_patch use_gpio resetalways deprecated ndsversion fix07 fix9993
    readtiers card_* nagra_read detect_seca_nagra_tunneled_card force_irdeto needsglobalfirst
    read_old_classes mode use_ssl pand_send_ecm gbox_* password user key pincode boxid boxkey
    rsakey deskey cwpkkey aeskeys ins7e ins7e11 ins2e06 ins42 k1_generic k1_unique
    tongfang3_deskey tongfang3_calibsn tongfang_boxid stbid mod1 mod2 idird cmd0eprov key3588
    key3460 key3310 data50 mod50 nuid forcepair otpcsc otacsc cwpkcaid cwekey* cak63nuid
    cak63cwekey stmkeys force_ua atr""")

# Network protocols (reader type "p" in the API); everything else is a local card ("r").
NETWORK_PROTOCOLS = _keys("""
    camd35 cs357x cs378x camd33 cccam cccam_ext cccam_mcs newcamd newcamd525 newcamd524
    radegast gbox scam ghttp constcw drecas serial""")

# Defaults we know of (§4.2, §1.6, and `nice = 99` which the real save dropped in the fixture).
DEFAULTS = {
    "global": {"nice": "99", "reload_useraccounts": "0", "reload_readers": "0",
               "reload_provid": "0", "reload_services_ids": "0", "reload_tier_ids": "0",
               "reload_fakecws": "0", "reload_ac_stat": "0", "reload_log": "0"},
    "cache": {"max_time": "15"},
    "monitor": {"port": "0", "monlevel": "2"},
    "webif": {"httpport": "0", "httpreadonly": "0", "httpsavefullcfg": "0",
              "httpoverwritebakfile": "0", "https_auto_create_cert": "1",
              "https_force_secure_mode": "1", "httprefresh": "0", "httppollrefresh": "60",
              "httpmaxrequestsize": "102400", "httphideidleclients": "1", "httphelplang": "en",
              "httposcamlabel": "OSCam", "aulow": "30", "hideclient_to": "25"},
}

# Relative key order seen in the real rewrite (fixtures/oscam/webif/oscam.conf.after-webif-save).
KEY_ORDER_HINTS = {
    "global": ["serverip", "logfile", "clienttimeout", "maxlogsize", "waitforcards"],
    "newcamd": ["port", "serverip", "key"],
    "cccam": ["port", "serverip", "nodeid", "version"],
    "webif": ["httpport", "serverip", "httpuser", "httppwd", "httpallowed"],
}

# §1.2: httpallowed when oscam.conf is missing entirely.
DEFAULT_HTTPALLOWED = ("127.0.0.1,192.168.0.0-192.168.255.255,10.0.0.0-10.255.255.255,"
                       "172.16.0.0-172.31.255.255,::1")

MAXLINESIZE = 16384  # §3.1: fgets buffer; longer lines are split
CONFVARWIDTH = 30    # §3.3: key column width
SECRET_HINTS = ("pwd", "pass", "key", "secret", "pin", "nodeid")


def known(keyset, key):
    if key in keyset:
        return True
    return any(k.endswith("*") and key.startswith(k[:-1]) for k in keyset)


def ascii_lower(s):
    # C tolower() in the "C" locale only touches A-Z.
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def trim(s):
    """§3.1 trim(): trailing space/TAB/CR/LF always go; leading whitespace only if the first
    character is a space (so a leading TAB survives)."""
    s = s.rstrip(" \t\r\n")
    if s.startswith(" "):
        s = s.lstrip(" \t\r\n")
    return s


def redact(key, value):
    """Unknown-setting warnings quote 'key=value'; never echo something that looks secret."""
    return "<redacted>" if any(h in ascii_lower(key) for h in SECRET_HINTS) else value


def read_lines(path):
    """Yield (line_number, trimmed_text) the way fgets() with MAXLINESIZE would see them.
    Files are bytes without charset handling; surrogateescape keeps any byte round-trippable."""
    with open(path, "rb") as f:
        data = f.read()
    lineno = 0
    for raw in data.splitlines(keepends=True):
        # fgets() reads at most MAXLINESIZE-1 bytes; the rest of a long line is a new line.
        for i in range(0, max(len(raw), 1), MAXLINESIZE - 1):
            lineno += 1
            yield lineno, trim(raw[i:i + MAXLINESIZE - 1].decode("utf-8", "surrogateescape"))


def split_kv(line):
    if "=" not in line:
        return None
    key, value = line.split("=", 1)
    return ascii_lower(trim(key)), trim(value)


def parse_conf(path, warn):
    """oscam.conf → {section: {key: value}} (§3.1).  Only known sections/keys are kept, since
    everything else is dropped by the next rewrite anyway.  Keys before the first header are
    [global]; section names are case-sensitive; an empty value resets the key to its default."""
    conf = {"global": {}}
    section = "global"
    for lineno, line in read_lines(path):
        if len(line) < 3 or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            if name in NOT_COMPILED:
                warn("WARNING: oscam.conf line %d section [%s] ignored (support not compiled in)"
                     % (lineno, name))
                section = None
            elif name in CONF_KEYS:
                section = name
                conf.setdefault(section, {})
            else:
                warn("WARNING: oscam.conf line %d unknown section [%s]" % (lineno, name))
                section = None
            continue
        if section is None:
            continue
        kv = split_kv(line)
        if kv is None or not known(CONF_KEYS[section], kv[0]):
            shown = line if kv is None else "%s=%s" % (kv[0], redact(*kv))
            warn("WARNING: oscam.conf line %d section [%s] contains unknown setting '%s'"
                 % (lineno, section, shown))
            continue
        set_value(conf, section, kv[0], kv[1])
    return conf


def set_value(conf, section, key, value):
    """config_set(): last one wins; an empty value resets to the default (= not stored)."""
    sect = conf.setdefault(section, {})
    if value == "":
        sect.pop(key, None)
    else:
        sect[key] = value


def parse_records(path, kind, keyset, warn):
    """oscam.user ([account]) / oscam.server ([reader]): a list of dicts (§3.1).  Headers are
    lower-cased; lines before the first header are ignored; any other section still takes a
    (empty) record slot; a BOM glued to the first header makes it unrecognised."""
    records = []
    current = None
    for _lineno, line in read_lines(path):
        if len(line) < 3 or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = {}
            records.append(current)
            if ascii_lower(line[1:-1]) != kind:
                current = None  # slot taken, keys ignored
            continue
        if current is None:
            continue
        kv = split_kv(line)
        if kv is None:
            continue
        key, value = kv
        if not known(keyset, key):
            if not key.startswith("#"):
                warn("Warning: keyword '%s' in %s section not recognized" % (key, kind))
            continue
        if key in ("services", "class"):
            value = ascii_lower(value)
        if value == "":
            current.pop(key, None)
        else:
            current[key] = value
    return records


def parse_users(path, warn, log):
    users = parse_records(path, "account", ACCOUNT_KEYS, warn)
    seen = set()
    for acc in users:
        name = acc.get("user", "")
        if name and name in seen:
            acc["user"] = name + "_x"
            log("duplicate account '%s' renamed to '%s'" % (name, acc["user"]))
        seen.add(acc.get("user", ""))
    return users


def parse_readers(path, warn, log):
    readers = parse_records(path, "reader", READER_KEYS, warn)
    for rdr in readers:
        label = rdr.get("label", "")
        if " " in label:
            rdr["label"] = label.replace(" ", "_")
            log("corrected label to %s" % rdr["label"])
    return readers


def account_expired(acc, now=None):
    """expdate YYYY-MM-DD or YYYY/MM/DD expires at 23:59:59 local time (§3.2)."""
    exp = acc.get("expdate", "").replace("/", "-")
    try:
        end = time.mktime(time.strptime(exp + " 23:59:59", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return False
    return (time.time() if now is None else now) > end


def account_disabled(acc):
    return acc.get("disabled", "0").strip() not in ("", "0")


def int_value(text, default=0):
    """strtol()-like: leading number, trailing junk ignored (§3.1)."""
    text = (text or "").strip()
    digits = ""
    for i, c in enumerate(text):
        if c.isdigit() or (i == 0 and c in "+-"):
            digits += c
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return default


def section_active(conf, section):
    """§3.3: [webif] only with httpport != 0, [monitor] only with port != 0, protocol sections
    only with a port.  [dvbapi] only when enabled (our guess, consistent with the fixture)."""
    sect = conf.get(section, {})
    switch = {"webif": "httpport", "monitor": "port", "cs357x": "port", "cs378x": "port",
              "newcamd": "port", "cccam": "port", "gbox": "port", "camd33": "port",
              "radegast": "port", "scam": "port", "pandora": "pand_port", "serial": "device",
              "dvbapi": "enabled"}.get(section)
    if switch is None:
        return True
    value = sect.get(switch, "").lstrip("+")
    return value != "" and value != "0"


def ordered_keys(section, keys):
    hints = KEY_ORDER_HINTS.get(section, [])
    first = [k for k in hints if k in keys]
    return first + [k for k in keys if k not in hints]


def format_conf(conf, version, nodeid=None):
    """The text OScam's write_config() would produce from the in-memory config (§3.3)."""
    out = ["# oscam.conf generated automatically by Streamboard OSCam %s\n" % version,
           "# Read more: https://git.streamboard.tv/common/oscam/blob/master/Distribution/doc/"
           "txt/oscam.conf.txt\n",
           "\n"]
    full = conf.get("webif", {}).get("httpsavefullcfg", "0") not in ("", "0")
    for section in CONF_SECTIONS:
        if section in NOT_COMPILED or not section_active(conf, section):
            continue
        values = dict(conf.get(section, {}))
        if section == "cccam" and "nodeid" not in values and nodeid:
            values["nodeid"] = nodeid
        defaults = DEFAULTS.get(section, {})
        lines = []
        for key in ordered_keys(section, list(values)):
            value = values[key]
            if not full and (value == "" or defaults.get(key) == value):
                continue
            lines.append("%s= %s\n" % (key.ljust(CONFVARWIDTH), value))
        if not lines and section != "global":
            continue
        out.append("[%s]\n" % section)
        out.extend(lines)
        out.append("\n")
    return "".join(out)


def flush_config_file(path, text, overwrite_bak=False):
    """§3.3: write <file>.tmp, make <file>.bak from the old file only if none exists (or always
    with httpoverwritebakfile), then COPY the .tmp over the file (inode kept) and delete it."""
    tmp, bak = path + ".tmp", path + ".bak"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    if os.path.exists(path) and (overwrite_bak or not os.path.exists(bak)):
        shutil.copyfile(path, bak)
    with open(tmp, "rb") as src, open(path, "wb") as dst:  # "w" truncates in place
        shutil.copyfileobj(src, dst)
    os.unlink(tmp)
