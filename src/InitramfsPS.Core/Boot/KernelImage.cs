using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Boot
{
    /// <summary>
    /// What a kernel file says about itself: its architecture (from the x86 boot header, the arm64
    /// Image header or an ELF header), its version string, and its build configuration, from a
    /// <c>config-&lt;version&gt;</c> file beside it or the IKCONFIG copy built into it.
    /// </summary>
    public sealed class KernelImage
    {
        /// <summary>Kernels read at most this far (a distribution vmlinuz is about 8 MB, a vmlinux about 60 MB).</summary>
        public const long MaxKernelSize = 256L << 20;

        /// <summary>A decompressed kernel payload or embedded config read at most this far.</summary>
        private const long MaxDecompressed = 512L << 20;

        private static readonly byte[] ConfigStart = Encoding.ASCII.GetBytes("IKCFG_ST");

        private string? unreadablePayload;

        private KernelImage(string path) => Path = path;

        /// <summary>The kernel file.</summary>
        public string Path { get; }

        /// <summary>The image format: bzImage, arm64 Image, ELF, or unknown.</summary>
        public string Format { get; private set; } = "unknown";

        /// <summary>The architecture as OCI platforms name it (amd64, 386, arm64, riscv64), or null when the file does not say.</summary>
        public string? Architecture { get; private set; }

        /// <summary>The release (<c>6.1.0-57-amd64</c>) from the bzImage header or the file name, or null.</summary>
        public string? Release { get; private set; }

        /// <summary>CONFIG_ options and their values (<c>y</c>, <c>m</c>, numbers, strings); null when no configuration was found.</summary>
        public IReadOnlyDictionary<string, string>? Config { get; private set; }

        /// <summary>Where the configuration came from (a file, or "IKCONFIG"), or why none was found.</summary>
        public string ConfigSource { get; private set; } = string.Empty;

        /// <summary>The value of a CONFIG_ option, or null when it is not set (or no configuration was found).</summary>
        public string? Option(string name) => Config is not null && Config.TryGetValue(name, out string? v) ? v : null;

        /// <summary>Whether an option is built in (<c>=y</c>).</summary>
        public bool BuiltIn(string name) => Option(name) == "y";

        /// <summary>Reads <paramref name="path"/>; KernelNotFound when it cannot be read, KernelTooLarge past <see cref="MaxKernelSize"/>.</summary>
        public static KernelImage Read(string path)
        {
            string full = Kernels.Check(path);
            var info = new FileInfo(full);
            if (info.Length > MaxKernelSize)
            {
                throw new InitramfsException("KernelTooLarge", FailureKind.LimitExceeded,
                    $"'{full}' is {Units.Bytes(info.Length)}; a kernel file of more than {Units.Bytes(MaxKernelSize)} is not read.", full);
            }
            byte[] bytes = File.ReadAllBytes(full);
            var kernel = new KernelImage(full);
            byte[]? payload = kernel.ReadHeader(bytes);
            kernel.Release ??= ReleaseFromName(info.Name);
            kernel.FindConfig(info, payload ?? bytes);
            return kernel;
        }

        /// <summary>Reads the header; returns the decompressed kernel of a bzImage when its codec is one .NET reads (gzip, zstd).</summary>
        private byte[]? ReadHeader(byte[] b)
        {
            if (b.Length > 0x250 && b[0x202] == 'H' && b[0x203] == 'd' && b[0x204] == 'r' && b[0x205] == 'S')
            {
                Format = "bzImage";
                ushort protocol = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(0x206));
                // xloadflags bit 0 (boot protocol 2.12): a 64-bit entry point, so an x86_64 kernel.
                Architecture = protocol >= 0x20C && (b[0x236] & 1) != 0 ? "amd64" : "386";
                int versionOffset = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(0x20E)) + 0x200;
                if (versionOffset > 0x200 && versionOffset < b.Length)
                {
                    int end = Array.IndexOf(b, (byte)0, versionOffset, Math.Min(256, b.Length - versionOffset));
                    string version = Encoding.ASCII.GetString(b, versionOffset, (end < 0 ? Math.Min(256, b.Length - versionOffset) : end) - versionOffset);
                    Release = version.Split(' ', 2)[0];
                }
                if (protocol >= 0x208)
                {
                    int setupSectors = b[0x1F1] == 0 ? 4 : b[0x1F1];
                    long start = (setupSectors + 1L) * 512 + BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(0x248));
                    long length = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(0x24C));
                    if (start >= 0 && length > 0 && start + length <= b.Length)
                    {
                        var payload = b.AsMemory((int)start, (int)length);
                        var decompressed = Decompress(payload);
                        unreadablePayload = decompressed is null ? Codec(payload.Span) : null;
                        return decompressed;
                    }
                }
                return null;
            }
            if (b.Length > 0x40 && b[0x38] == 'A' && b[0x39] == 'R' && b[0x3A] == 'M' && b[0x3B] == 0x64)
            {
                Format = "arm64 Image";
                Architecture = "arm64";
                return null;
            }
            if (b.Length > 0x14 && b[0] == 0x7F && b[1] == 'E' && b[2] == 'L' && b[3] == 'F')
            {
                Format = "ELF";
                bool little = b[5] == 1;
                ushort machine = little ? BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(0x12)) : BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(0x12));
                Architecture = ArchitectureOf(machine);
            }
            return null;
        }

        /// <summary>The OCI architecture of an ELF <c>e_machine</c>; null for one this module does not know.</summary>
        internal static string? ArchitectureOf(int machine) => machine switch
        {
            62 => "amd64",
            3 => "386",
            183 => "arm64",
            40 => "arm",
            243 => "riscv64",
            21 => "ppc64le",
            22 => "s390x",
            _ => null,
        };

        /// <summary>A bzImage payload decompressed, when it is gzip or zstd; null for the codecs .NET has no reader for (xz, lzma, lz4, bzip2, lzo).</summary>
        private static byte[]? Decompress(ReadOnlyMemory<byte> payload)
        {
            var span = payload.Span;
            Stream? reader = span.Length > 4 && span[0] == 0x1F && span[1] == 0x8B ? new GZipStream(new MemoryStream(payload.ToArray()), CompressionMode.Decompress)
                : span.Length > 4 && span[0] == 0x28 && span[1] == 0xB5 && span[2] == 0x2F && span[3] == 0xFD ? new ZstdSharp.DecompressionStream(new MemoryStream(payload.ToArray()))
                : null;
            if (reader is null)
            {
                return null;
            }
            using (reader)
            {
                return ReadBounded(reader);
            }
        }

        private static string Codec(ReadOnlySpan<byte> b) =>
            b.StartsWith(new byte[] { 0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00 }) ? "xz"
            : b.StartsWith(new byte[] { 0x5D, 0x00, 0x00 }) ? "lzma"
            : b.StartsWith("BZh"u8) ? "bzip2"
            : b.StartsWith(new byte[] { 0x02, 0x21, 0x4C, 0x18 }) ? "lz4"
            : b.StartsWith(new byte[] { 0x89, 0x4C, 0x5A, 0x4F }) ? "lzo"
            : "an unknown codec";

        private static byte[]? ReadBounded(Stream reader)
        {
            using var output = new MemoryStream();
            byte[] buffer = new byte[81920];
            try
            {
                int n;
                while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
                {
                    output.Write(buffer, 0, n);
                    if (output.Length > MaxDecompressed)
                    {
                        return null;
                    }
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException or ZstdSharp.ZstdException)
            {
                // A payload that does not decompress holds no config we could read.
                return null;
            }
            return output.ToArray();
        }

        private void FindConfig(FileInfo file, byte[] image)
        {
            var names = new List<string>();
            string? suffix = Suffix(file.Name);
            if (suffix is not null)
            {
                names.Add("config-" + suffix);
            }
            if (Release is not null && Release != suffix)
            {
                names.Add("config-" + Release);
            }
            names.Add(file.Name + ".config");
            foreach (string name in names)
            {
                string candidate = System.IO.Path.Combine(file.DirectoryName!, name);
                if (File.Exists(candidate) && new FileInfo(candidate).Length < (16 << 20))
                {
                    Config = Parse(File.ReadAllText(candidate));
                    ConfigSource = candidate;
                    return;
                }
            }
            int at = image.AsSpan().IndexOf(ConfigStart);
            if (at >= 0)
            {
                using var gzip = new GZipStream(new MemoryStream(image, at + ConfigStart.Length, image.Length - at - ConfigStart.Length), CompressionMode.Decompress);
                if (ReadBounded(gzip) is { } text)
                {
                    Config = Parse(Encoding.UTF8.GetString(text));
                    ConfigSource = "IKCONFIG";
                    return;
                }
            }
            ConfigSource = $"not found: no {string.Join(" or ", names)} beside the kernel, and "
                + (unreadablePayload is { } codec ? $"its compressed part ({codec}) cannot be searched for an IKCONFIG copy" : "no IKCONFIG copy in it");
        }

        private static string? Suffix(string name)
        {
            foreach (string prefix in KernelPrefixes)
            {
                if (name.StartsWith(prefix, StringComparison.Ordinal) && name.Length > prefix.Length)
                {
                    return name[prefix.Length..];
                }
            }
            return null;
        }

        private static readonly string[] KernelPrefixes = { "vmlinuz-", "vmlinux-", "bzImage-", "Image-" };

        private static string? ReleaseFromName(string name) => Suffix(name);

        /// <summary>Parses a kernel .config: <c>CONFIG_X=value</c> lines; "is not set" lines and comments are skipped.</summary>
        public static Dictionary<string, string> Parse(string text)
        {
            var config = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string raw in text.Split('\n'))
            {
                string line = raw.Trim();
                if (!line.StartsWith("CONFIG_", StringComparison.Ordinal))
                {
                    continue;
                }
                int eq = line.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    config[line[..eq]] = line[(eq + 1)..].Trim('"');
                }
            }
            return config;
        }
    }
}
