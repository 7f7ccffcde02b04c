using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;

namespace InitramfsPS.Fuzz
{
    /// <summary>Valid inputs for each target, generated (so no binary seeds need be kept), plus any files in tests/Fuzz/seeds/&lt;target&gt;/.</summary>
    internal static class Seeds
    {
        private static readonly Encoding Utf8 = new UTF8Encoding(false);

        public static List<byte[]> For(string target)
        {
            var list = target switch
            {
                "tar" => Tars(),
                "gzip" => Tars().Select(Gzip).ToList(),
                "zstd" => Tars().Select(Zstd).ToList(),
                "cpio" => Cpios(),
                "manifest" => Texts(Manifest, DockerManifest, Index, LayoutIndex, Config),
                "index" => Texts(Index, LayoutIndex),
                "config" => Texts(Config),
                "digest" => Texts("sha256:" + new string('a', 64), "sha512:" + new string('0', 128)),
                "reference" => Texts("alpine", "docker.io/library/alpine:3.20", "127.0.0.1:5000/team/app:1.0@sha256:" + new string('b', 64),
                    "oci:./layout:tag", "docker-archive:img.tar:busybox", "ghcr.io/o/r/s:v1"),
                "selftest" => Texts("selftest seed"),
                _ => new List<byte[]>(),
            };
            string extra = Path.Combine(AppContext.BaseDirectory, "seeds", target);
            if (Directory.Exists(extra))
            {
                list.AddRange(Directory.GetFiles(extra).OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllBytes));
            }
            return list;
        }

        private static List<byte[]> Texts(params string[] texts) => texts.Select(t => Utf8.GetBytes(t)).ToList();

        public static byte[] Gzip(byte[] data)
        {
            using var ms = new MemoryStream();
            using (var gz = new GZipStream(ms, CompressionLevel.Fastest, true))
            {
                gz.Write(data);
            }
            return ms.ToArray();
        }

        public static byte[] Zstd(byte[] data)
        {
            using var c = new ZstdSharp.Compressor(3);
            return c.Wrap(data).ToArray();
        }

        private static List<byte[]> Tars()
        {
            var a = new TarWriter();
            a.Dir("etc/");
            a.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
            a.File("init", "#!/bin/sh\necho hi\n", mode: 0x1ED);
            a.Symlink("bin/sh", "busybox");
            a.Hardlink("etc/passwd-", "etc/passwd");
            a.Entry("dev/null", '3', Array.Empty<byte>(), major: 1, minor: 3);
            a.Entry("run/fifo", '6', Array.Empty<byte>());
            a.File("etc/.wh.gone", string.Empty);
            a.File("data/.wh..wh..opq", string.Empty);
            var b = new TarWriter();
            b.Pax(new() { ["path"] = "very/" + new string('l', 150) + "/name", ["mtime"] = "1700000000.5", ["uid"] = "4000000" });
            b.File("placeholder", "pax named");
            b.Gnu('L', "gnu/" + new string('g', 120) + "\0");
            b.File("short", "gnu named");
            b.Entry("global", 'g', Utf8.GetBytes("19 comment=hello!\n"));
            b.File("./a//b/../c", "normalised");
            return new List<byte[]> { a.Finish(true), b.Finish(true), a.Finish(false) };
        }

        private sealed class TarWriter
        {
            private readonly MemoryStream ms = new();

            public void File(string name, string data, int mode = 0x1A4) => Entry(name, '0', Utf8.GetBytes(data), mode);

            public void Dir(string name) => Entry(name, '5', Array.Empty<byte>(), 0x1ED);

            public void Symlink(string name, string target) => Entry(name, '2', Array.Empty<byte>(), 0x1FF, target);

            public void Hardlink(string name, string target) => Entry(name, '1', Array.Empty<byte>(), 0x1A4, target);

            public void Gnu(char type, string value) => Entry("././@LongLink", type, Utf8.GetBytes(value));

            public void Pax(Dictionary<string, string> records)
            {
                var sb = new StringBuilder();
                foreach (var (k, v) in records)
                {
                    string body = $" {k}={v}\n";
                    int len = Utf8.GetByteCount(body) + 1;
                    while (len.ToString(CultureInfo.InvariantCulture).Length + Utf8.GetByteCount(body) != len)
                    {
                        len = len.ToString(CultureInfo.InvariantCulture).Length + Utf8.GetByteCount(body);
                    }
                    sb.Append(len.ToString(CultureInfo.InvariantCulture)).Append(body);
                }
                Entry("PaxHeaders/x", 'x', Utf8.GetBytes(sb.ToString()));
            }

            public void Entry(string name, char type, byte[] data, int mode = 0x1A4, string link = "", int major = 0, int minor = 0)
            {
                var h = new byte[512];
                Utf8.GetBytes(name).AsSpan(0, Math.Min(100, Utf8.GetByteCount(name))).CopyTo(h);
                Octal(h, 100, 8, mode);
                Octal(h, 108, 8, 0);
                Octal(h, 116, 8, 0);
                Octal(h, 124, 12, data.Length);
                Octal(h, 136, 12, 1700000000);
                h[156] = (byte)type;
                Utf8.GetBytes(link).CopyTo(h, 157);
                Encoding.ASCII.GetBytes("ustar\000").CopyTo(h, 257);
                Octal(h, 329, 8, major);
                Octal(h, 337, 8, minor);
                for (int i = 148; i < 156; i++)
                {
                    h[i] = (byte)' ';
                }
                int sum = h.Sum(x => x);
                Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
                ms.Write(h);
                ms.Write(data);
                ms.Write(new byte[(512 - data.Length % 512) % 512]);
            }

            private static void Octal(byte[] h, int offset, int width, long value) =>
                Encoding.ASCII.GetBytes(Convert.ToString(value, 8).PadLeft(width - 1, '0') + "\0").CopyTo(h, offset);

            public byte[] Finish(bool endBlocks)
            {
                var copy = ms.ToArray();
                return endBlocks ? copy.Concat(new byte[1024]).ToArray() : copy;
            }
        }

        private static List<byte[]> Cpios()
        {
            var w = new CpioWriter();
            w.Add(".", 0x41ED, Array.Empty<byte>());
            w.Add("init", 0x81ED, Utf8.GetBytes("#!/bin/sh\nexec /bin/sh\n"));
            w.Add("bin", 0x41ED, Array.Empty<byte>());
            w.Add("bin/sh", 0xA1FF, Utf8.GetBytes("busybox"));
            w.Add("dev", 0x41ED, Array.Empty<byte>());
            w.Add("dev/console", 0x2180, Array.Empty<byte>(), rmajor: 5, rminor: 1);
            w.Add("etc", 0x41ED, Array.Empty<byte>());
            w.Add("etc/a", 0x81A4, Array.Empty<byte>(), ino: 900, nlink: 2);
            w.Add("etc/b", 0x81A4, Utf8.GetBytes("linked\n"), ino: 900, nlink: 2);
            byte[] plain = w.Finish();
            var w2 = new CpioWriter();
            w2.Add("late", 0x81A4, Utf8.GetBytes("second part\n"));
            byte[] second = w2.Finish();
            return new List<byte[]>
            {
                plain,
                Gzip(plain),
                Zstd(plain),
                plain.Concat(new byte[512]).Concat(Gzip(second)).ToArray(),
            };
        }

        private sealed class CpioWriter
        {
            private readonly MemoryStream ms = new();
            private int ino = 1;

            public void Add(string name, int mode, byte[] data, int rmajor = 0, int rminor = 0, int ino = 0, int nlink = 1)
            {
                byte[] n = Utf8.GetBytes(name + "\0");
                string header = string.Create(CultureInfo.InvariantCulture,
                    $"070701{(ino == 0 ? this.ino++ : ino):X8}{mode:X8}{0:X8}{0:X8}{nlink:X8}{1700000000:X8}{data.Length:X8}{0:X8}{0:X8}{rmajor:X8}{rminor:X8}{n.Length:X8}{0:X8}");
                ms.Write(Encoding.ASCII.GetBytes(header));
                ms.Write(n);
                Pad();
                ms.Write(data);
                Pad();
            }

            private void Pad()
            {
                while (ms.Length % 4 != 0)
                {
                    ms.WriteByte(0);
                }
            }

            public byte[] Finish()
            {
                Add("TRAILER!!!", 0, Array.Empty<byte>(), ino: 0);
                while (ms.Length % 512 != 0)
                {
                    ms.WriteByte(0);
                }
                return ms.ToArray();
            }
        }

        private const string Manifest = """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
             "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":1234},
             "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":99},
                       {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":7,"annotations":{"a":"b"}}]}
            """;

        private const string DockerManifest = """
            {"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
             "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":1},
             "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":99}]}
            """;

        private const string Index = """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
             {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","size":500,"platform":{"architecture":"amd64","os":"linux"}},
             {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee","size":501,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
             {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","size":502,"platform":{"architecture":"unknown","os":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}
            """;

        private const string LayoutIndex = """
            {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","size":500,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}
            """;

        private const string Config = """
            {"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/app"],"Cmd":["--x"],"Env":["A=1","PATH=/bin"],"WorkingDir":"/srv","User":"1000:1000","Labels":{"k":"v"}},
             "rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},"history":[{"created_by":"x"}]}
            """;
    }
}
