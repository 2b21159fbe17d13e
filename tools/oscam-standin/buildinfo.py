"""What this fake OScam binary was "built" as: version, features, and the test knobs.

OSCAM_STANDIN_VERSION, OSCAM_STANDIN_RESTART_DELAY and OSCAM_STANDIN_WEBIF_HANG are described in
README.md; their defaults are faithful to the real OScam 2.26.05-11961 of the fixtures.
"""

import os
import platform
import time

DEFAULT_VERSION = "2.26.05-11961@5b6fa7ad"
VERSION_FULL = os.environ.get("OSCAM_STANDIN_VERSION") or DEFAULT_VERSION   # CS_VERSION@commit
VERSION, _, COMMIT = VERSION_FULL.partition("@")
COMPILER = "%s-linux-gnu" % platform.machine()
RESTART_DELAY = float(os.environ.get("OSCAM_STANDIN_RESTART_DELAY", "5"))  # §1.5: ~5 s
WEBIF_HANG = os.environ.get("OSCAM_STANDIN_WEBIF_HANG") == "1"
EXIT_RESTART = 99   # §1.5: worker exit status that makes the watchdog start a new worker

# Feature list of oscam.version (§2.2), copied from fixtures/oscam/webif/oscam.version except
# "SSL support" and "IPv6 support", which this stand-in does provide (+port, ::1).
FEATURES = """\
Web interface support:yes|LiveLog support:yes|jQuery support intern:yes|Embedded wiki help system:no
Compressed pages:yes|SSL support:yes|DVB API support:yes|DVB API with extended CW API support:no
DVB API with Stream Relay support:no|DVB API with AZBOX support:no|DVB API with MCA support:no
DVB API with COOLAPI support:no|DVB API with COOLAPI2 support:no|DVB API with STAPI support:no
DVB API with STAPI5 support:no|DVB API with NEUTRINO support:no|DVB API read-sdt charsets:yes
Anti-cascading support:no|Debug mode:yes|Monitor:yes|Loadbalancing support:yes
Cache exchange support:no|CW Cycle Check support:no|LCD support:no|LED support:no
Clockfix with realtime clock:no|IPv6 support:yes
-
camd 3.3x:no|camd 3.5 UDP:yes|camd 3.5 TCP:yes|newcamd:yes|CCcam:yes|CCcam share:yes|gbox:yes
radegast:no|scam:no|serial:no|constant CW:no|Pandora:no|ghttp:no|Streamrelay:no
-
Reader support:yes
-
Nagra:yes|Nagra Merlin:yes|Irdeto:yes|Conax:yes|Cryptoworks:yes|Seca:yes|Viaccess:yes
NDS Videoguard:yes|DRE Crypt:yes|TONGFANG:yes|Bulcrypt:yes|Griffin:yes|DGCrypt:yes
-
cardreader_phoenix:yes|cardreader_drecas:no|cardreader_internal_azbox:no
cardreader_internal_coolapi:no|cardreader_internal_coolapi2:no|cardreader_internal_amsmc:no
cardreader_internal_sci:yes|cardreader_sc8in1:no|cardreader_mp35:no|cardreader_smargo:no
cardreader_pcsc:no|cardreader_smartreader:no|cardreader_db2com:no|cardreader_stapi:no
cardreader_stapi5:no|cardreader_stinger:no"""


def feature_lines():
    out = []
    for row in FEATURES.splitlines():
        if row == "-":
            out.append("")
            continue
        for item in row.split("|"):
            name, value = item.rsplit(":", 1)
            out.append("%-40s %s" % (name + ":", value))  # §2.2 "%-40s %s"
    return out


def build_date():
    # GUESS: the "build" of a script is its last modification.
    return time.strftime("%d.%m.%Y %H:%M:%S", time.localtime(os.path.getmtime(__file__)))


def version_body(start, ppid, tempdir, confdir, webif_port, with_start=True):
    """oscam.version in the current format (§2.2): labels padded to 16 columns."""
    rows = []
    if with_start:
        rows += [("Unix Starttime:", "%d" % start),
                 ("Starttime:", time.strftime("%d.%m.%Y %H:%M:%S", time.localtime(start)))]
    rows += [("Build Date:", build_date()),
             ("Version:", VERSION_FULL),
             ("Compiler:", COMPILER),
             ("Box Type:", "generic (generic)"),
             ("PID:", "%d" % ppid),
             ("TempDir:", tempdir),
             ("GBox tmp_dir:", "not defined using: %s" % tempdir),
             ("ConfigDir:", confdir),
             ("WebifPort:", "%d" % webif_port)]
    lines = ["%-16s%s" % row for row in rows] + [""] + feature_lines()
    return "\n".join(lines) + "\n"
