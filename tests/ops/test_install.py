"""meson install --destdir puts every file in place, the installed example config starts reverbd,
and systemd-analyze verify accepts the installed units."""

import os
import re
import subprocess
import tempfile
import unittest

from ops_support import Reverbd, article_client, http_get, tool

PREFIX_FILES = {
    "bin/reverbd", "bin/reverb-load",
    "lib/systemd/system/reverbd.service", "lib/systemd/system/reverbd.socket",
    "etc/reverbd/reverbd.toml",
    "share/man/man1/reverbd.1", "share/man/man1/reverb-load.1",
}


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.destdir = cls.tmp.name
        build = os.environ.get("REVERB_BUILD_DIR", "")
        cls.install = subprocess.run(
            ["meson", "install", "-C", build, "--destdir", cls.destdir, "--no-rebuild",
             "--quiet"], capture_output=True, text=True, timeout=120, check=False)
        options = subprocess.run(["meson", "introspect", "--buildoptions", build],
                                 capture_output=True, text=True, timeout=60, check=False)
        values = {o["name"]: o["value"] for o in __import__("json").loads(options.stdout or "[]")}
        cls.prefix = values.get("prefix", "/usr/local")
        cls.sysconfdir = values.get("sysconfdir", "etc")
        cls.root = cls.destdir + cls.prefix

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)

    def installed(self, relative):
        if relative.startswith("etc/") and os.path.isabs(self.sysconfdir):
            return self.destdir + os.path.join(self.sysconfdir, relative[len("etc/"):])
        return os.path.join(self.root, relative)

    def test_every_file_is_in_place(self):
        for relative in sorted(PREFIX_FILES):
            path = self.installed(relative)
            self.assertTrue(os.path.isfile(path), f"{path} not installed")
        for binary in ("bin/reverbd", "bin/reverb-load"):
            self.assertTrue(os.access(self.installed(binary), os.X_OK), binary)
        version = subprocess.run([self.installed("bin/reverbd"), "--version"],
                                 capture_output=True, text=True, timeout=10, check=False)
        self.assertEqual(version.returncode, 0)
        with open(self.installed("share/man/man1/reverbd.1"), encoding="utf-8") as f:
            page = f.read()
        self.assertIn(".TH REVERBD", page)
        self.assertIn("metrics\\-listen", page)
        with open(self.installed("lib/systemd/system/reverbd.service"), encoding="utf-8") as f:
            unit = f.read()
        # The unit runs the installed binary with the installed config.
        config = os.path.join(self.prefix, self.sysconfdir, "reverbd", "reverbd.toml")
        self.assertIn(f"ExecStart={self.prefix}/bin/reverbd --config {config}\n", unit)
        for setting in ("Type=notify", "DynamicUser=yes", "NoNewPrivileges=yes",
                        "ProtectSystem=strict", "PrivateTmp=yes", "LimitNOFILE="):
            self.assertIn(setting, unit)
        with open(self.installed("lib/systemd/system/reverbd.socket"), encoding="utf-8") as f:
            self.assertIn("ListenStream=2002\n", f.read())

    def test_installed_example_config_runs(self):
        config = self.installed("etc/reverbd/reverbd.toml")
        server = Reverbd([self.installed("bin/reverbd"), "--config", config,
                          "--metrics-listen", "127.0.0.1:0", "--workers", "1"])
        self.addCleanup(server.close)
        self.assertEqual(article_client(server.address), b".sajniN gnidoC oG")
        self.assertEqual(http_get(server.metrics, "/healthz")[0], 200)
        self.assertEqual(server.stop(), 0, server.stderr())

    def test_systemd_analyze_verify_accepts_the_units(self):
        analyze = tool(self, "systemd-analyze", "systemd")
        # verify checks that ExecStart's binary exists, and that Documentation=man: pages resolve.
        # The only change to the installed units: ExecStart points at the binary in DESTDIR (the
        # prefix path does not exist here), and MANPATH at DESTDIR's man pages.
        units = tempfile.TemporaryDirectory()
        self.addCleanup(units.cleanup)
        for name in ("reverbd.service", "reverbd.socket"):
            with open(self.installed(f"lib/systemd/system/{name}"), encoding="utf-8") as f:
                text = f.read()
            text = re.sub(r"^ExecStart=\S+", f"ExecStart={self.installed('bin/reverbd')}", text,
                          flags=re.MULTILINE)
            with open(os.path.join(units.name, name), "w", encoding="utf-8") as f:
                f.write(text)
        env = dict(os.environ, MANPATH=self.installed("share/man"))
        out = subprocess.run([analyze, "verify", "reverbd.socket", "reverbd.service"],
                             cwd=units.name, env=env, capture_output=True, text=True,
                             timeout=60, check=False)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual((out.stdout + out.stderr).strip(), "", "systemd-analyze has remarks")


if __name__ == "__main__":
    unittest.main()
