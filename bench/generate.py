"""Generates the benchmark trees: one oscam.user of 50,000 accounts, and four instances of
5,000 accounts each with a small oscam.conf and oscam.server. All credentials are fake."""
import os
import sys


def accounts(count, prefix):
    lines = ["# generated for the benchmark"]
    for i in range(count):
        lines += [
            "", "[account]", f"user = {prefix}{i:05d}", f"pwd = bench-pass-{prefix}{i:05d}",
            f"group = {1 + i % 4},{1 + (i + 1) % 4}", "caid = 0963,098C&FFF0:1830",
            "ident = 0963:000000,000001;098C:000000", f"expdate = 2027-{1 + i % 12:02d}-28",
        ]
        if i % 7 == 0:
            lines.append("disabled = 1")
    return "\n".join(lines) + "\n"


def main(root):
    os.makedirs(f"{root}/big", exist_ok=True)
    with open(f"{root}/big/oscam.user", "w") as f:
        f.write(accounts(50_000, "user"))
    for n in range(1, 5):
        d = f"{root}/inst{n}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/oscam.user", "w") as f:
            f.write(accounts(5_000, f"i{n}u"))
        with open(f"{d}/oscam.conf", "w") as f:
            f.write(f"[global]\nclienttimeout = 5000\n[cccam]\nport = {12000 + n}\n"
                    f"[webif]\nhttpport = 0\nhttpuser = admin\nhttppwd = bench-webif-{n}\n")
        with open(f"{d}/oscam.server", "w") as f:
            f.write("".join(f"[reader]\nlabel = r{i}\nprotocol = cccam\ndevice = 127.0.0.1,{20000 + i}\n"
                            f"user = u{i}\npassword = bench-reader-{i}\ngroup = 1\n\n" for i in range(20)))
    print(root)


if __name__ == "__main__":
    main(sys.argv[1])
