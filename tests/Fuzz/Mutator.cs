using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace InitramfsPS.Fuzz
{
    /// <summary>Deterministic mutations (the Random passed in is the only source of choice).</summary>
    internal static class Mutator
    {
        private static readonly byte[] Interesting = { 0, 1, 0x7F, 0x80, 0xFF, (byte)'0', (byte)'7', (byte)'8', (byte)' ', (byte)'/', (byte)'.', (byte)'\n', (byte)'"', (byte)'{', (byte)'[' };

        private static readonly string[] Tokens =
        {
            "../", "/", ".", "..", "\0", ".wh.", ".wh..wh..opq", ".wh..wh.", "070701", "070702", "TRAILER!!!", "ustar\0", "ustar  \0",
            "null", "true", "[]", "{}", "\"\"", "-1", "0", "1e999", "99999999999999999999", "\"sha256:\"", "\"sha256:../x\"", ":", ",", "\\u0000",
            "\"mediaType\":\"application/vnd.oci.image.index.v1+json\"", "\"manifests\":[", "\"schemaVersion\":1", "\"platform\":{\"os\":1}",
            " path=../../x\n", " size=999999999\n", " linkpath=/\n", " GNU.sparse.major=1\n", "@", "sha256:", "docker-archive:", "oci:",
        };

        public static byte[] Mutate(string target, byte[] seed, IReadOnlyList<byte[]> all, Random rng)
        {
            // a compressed target is mutated either in its compressed bytes or in the tar/cpio inside
            if ((target is "gzip" or "zstd") && rng.Next(2) == 0)
            {
                byte[] inner = Decompress(target, seed);
                inner = Stack(inner, all, rng, target == "gzip" || target == "zstd" ? "tar" : target);
                return target == "gzip" ? Seeds.Gzip(inner) : Seeds.Zstd(inner);
            }
            if (target == "cpio" && rng.Next(3) == 0 && seed.Length > 2 && seed[0] == (byte)'0')
            {
                byte[] mutated = Stack(seed, all, rng, "cpio");
                return rng.Next(2) == 0 ? Seeds.Gzip(mutated) : Seeds.Zstd(mutated);
            }
            return Stack(seed, all, rng, target);
        }

        private static byte[] Decompress(string kind, byte[] data)
        {
            using var input = new System.IO.MemoryStream(data);
            using System.IO.Stream s = kind == "gzip"
                ? new System.IO.Compression.GZipStream(input, System.IO.Compression.CompressionMode.Decompress)
                : new ZstdSharp.DecompressionStream(input);
            using var output = new System.IO.MemoryStream();
            s.CopyTo(output);
            return output.ToArray();
        }

        private static byte[] Stack(byte[] seed, IReadOnlyList<byte[]> all, Random rng, string kind)
        {
            var data = new List<byte>(seed);
            int n = 1 + rng.Next(4);
            for (int i = 0; i < n; i++)
            {
                Once(data, all, rng, kind);
            }
            return data.ToArray();
        }

        private static void Once(List<byte> d, IReadOnlyList<byte[]> all, Random rng, string kind)
        {
            int pos = d.Count == 0 ? 0 : rng.Next(d.Count);
            switch (rng.Next(10))
            {
                case 0 when d.Count > 0:
                    d[pos] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1 when d.Count > 0:
                    d[pos] = Interesting[rng.Next(Interesting.Length)];
                    break;
                case 2:
                    d.InsertRange(pos, Enumerable.Range(0, 1 + rng.Next(16)).Select(_ => (byte)rng.Next(256)));
                    break;
                case 3 when d.Count > 0:
                    d.RemoveRange(pos, Math.Min(d.Count - pos, 1 + rng.Next(64)));
                    break;
                case 4 when d.Count > 0:
                    d.RemoveRange(pos, d.Count - pos);
                    break;
                case 5 when d.Count > 0:
                    int len = Math.Min(d.Count - pos, 1 + rng.Next(512));
                    d.InsertRange(rng.Next(d.Count), d.GetRange(pos, len));
                    break;
                case 6:
                    byte[] other = all[rng.Next(all.Count)];
                    if (other.Length > 0)
                    {
                        int from = rng.Next(other.Length);
                        d.InsertRange(pos, other.Skip(from).Take(1 + rng.Next(Math.Min(1024, other.Length - from))));
                    }
                    break;
                case 7:
                    byte[] token = Encoding.UTF8.GetBytes(Tokens[rng.Next(Tokens.Length)]);
                    if (rng.Next(2) == 0 && d.Count >= pos + token.Length)
                    {
                        for (int i = 0; i < token.Length; i++)
                        {
                            d[pos + i] = token[i];
                        }
                    }
                    else
                    {
                        d.InsertRange(pos, token);
                    }
                    break;
                default:
                    LengthField(d, rng, kind);
                    break;
            }
        }

        /// <summary>Rewrites a numeric field: a tar octal field (fixing the checksum half the time) or a cpio hex field.</summary>
        private static void LengthField(List<byte> d, Random rng, string kind)
        {
            if (kind == "tar" && d.Count >= 512)
            {
                int block = rng.Next(d.Count / 512) * 512;
                (int off, int width) = new[] { (100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8) }[rng.Next(7)];
                string value = rng.Next(4) switch
                {
                    0 => Convert.ToString(rng.NextInt64(0, 1L << 33), 8),
                    1 => "77777777777",
                    2 => Convert.ToString(rng.Next(0, 4096), 8),
                    _ => new string((char)('0' + rng.Next(10)), width - 1),
                };
                byte[] v = Encoding.ASCII.GetBytes(value.PadLeft(width - 1, '0')[..(width - 1)]);
                if (rng.Next(8) == 0)
                {
                    v[0] = 0x80; // GNU base-256
                }
                for (int i = 0; i < v.Length; i++)
                {
                    d[block + off + i] = v[i];
                }
                if (rng.Next(2) == 0)
                {
                    for (int i = 148; i < 156; i++)
                    {
                        d[block + i] = (byte)' ';
                    }
                    int sum = 0;
                    for (int i = 0; i < 512; i++)
                    {
                        sum += d[block + i];
                    }
                    byte[] ck = Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0')[^6..] + "\0 ");
                    for (int i = 0; i < 8; i++)
                    {
                        d[block + 148 + i] = ck[i];
                    }
                }
                return;
            }
            if (kind == "cpio")
            {
                var starts = new List<int>();
                for (int i = 0; i + 110 <= d.Count; i++)
                {
                    if (d[i] == '0' && d[i + 1] == '7' && d[i + 2] == '0' && d[i + 3] == '7' && d[i + 4] == '0')
                    {
                        starts.Add(i);
                    }
                }
                if (starts.Count > 0)
                {
                    int h = starts[rng.Next(starts.Count)];
                    int field = rng.Next(13);
                    string value = rng.Next(4) switch
                    {
                        0 => "FFFFFFFF",
                        1 => "00000000",
                        2 => rng.Next(0, 5000).ToString("X8", CultureInfo.InvariantCulture),
                        _ => rng.Next().ToString("X8", CultureInfo.InvariantCulture),
                    };
                    for (int i = 0; i < 8; i++)
                    {
                        d[h + 6 + field * 8 + i] = (byte)value[i];
                    }
                    return;
                }
            }
            if (d.Count > 0)
            {
                d[rng.Next(d.Count)] = (byte)('0' + rng.Next(10));
            }
        }
    }
}
