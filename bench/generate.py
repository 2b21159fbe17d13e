"""Generates the benchmark trees: one oscam.user of 50,000 accounts, and eight instances of
5,000 accounts each with a small oscam.conf and oscam.server (inst1-4 written from templates,
inst5-8 with values of their own). All credentials are fake."""
import os
import sys


def accounts(count, prefix, varied=False):
    """Accounts as written from a few templates; `varied` gives each its own lists and date
    instead, the worst case for a reader that parses a repeated value once."""
    lines = ["# generated for the benchmark"]
    for i in range(count):
        if varied:
            lists = [f"group = {1 + i % 64},{1 + (i + 1) % 64}", f"caid = {i % 65536:04X},{(i * 7) % 65536:04X}&FFF0:1830",
                     f"ident = {i % 65536:04X}:{i:06X},{i + 1:06X};098C:000000",
                     f"expdate = {2027 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}"]
        else:
            lists = [f"group = {1 + i % 4},{1 + (i + 1) % 4}", "caid = 0963,098C&FFF0:1830",
                     "ident = 0963:000000,000001;098C:000000", f"expdate = 2027-{1 + i % 12:02d}-28"]
        lines += ["", "[account]", f"user = {prefix}{i:05d}", f"pwd = bench-pass-{prefix}{i:05d}"] + lists
        if i % 7 == 0:
            lines.append("disabled = 1")
    return "\n".join(lines) + "\n"


def main(root):
    os.makedirs(f"{root}/big", exist_ok=True)
    with open(f"{root}/big/oscam.user", "w") as f:
        f.write(accounts(50_000, "user"))
    for n in range(1, 9):
        # inst1-4 as written from templates, inst5-8 with every account's values its own.
        d = f"{root}/inst{n}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/oscam.user", "w") as f:
            f.write(accounts(5_000, f"i{n}u", varied=n > 4))
        with open(f"{d}/oscam.conf", "w") as f:
            f.write(f"[global]\nclienttimeout = 5000\n[cccam]\nport = {12000 + n}\n"
                    f"[webif]\nhttpport = 0\nhttpuser = admin\nhttppwd = bench-webif-{n}\n")
        with open(f"{d}/oscam.server", "w") as f:
            f.write("".join(f"[reader]\nlabel = r{i}\nprotocol = cccam\ndevice = 127.0.0.1,{20000 + i}\n"
                            f"user = u{i}\npassword = bench-reader-{i}\ngroup = 1\n\n" for i in range(20)))
    print(root)


if __name__ == "__main__":
    main(sys.argv[1])
