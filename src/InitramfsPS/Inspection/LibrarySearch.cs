using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace InitramfsPS.Inspection
{
    /// <summary>
    /// Finds shared libraries inside a rootfs as the dynamic loader would: the object's DT_RPATH
    /// (when it has no DT_RUNPATH) and the executable's, DT_RUNPATH, the directories of
    /// /etc/ld.so.conf (and its includes) or musl's /etc/ld-musl-ARCH.path, then the default and
    /// multiarch directories. $ORIGIN is the directory of the object. Symlinks are followed inside
    /// the rootfs and '..' never climbs above its root, as inside the VM; a candidate of another ELF
    /// class or machine is skipped, as the loader skips it.
    /// </summary>
    public sealed class LibrarySearch
    {
        private readonly Rootfs rootfs;
        private readonly Func<RootfsEntry, ElfFile?> elfOf;
        private readonly Dictionary<string, RootfsEntry?> memo = new(StringComparer.Ordinal);
        private List<string>? ldSoConf;
        private readonly Dictionary<string, List<string>> muslPaths = new(StringComparer.Ordinal);
        private static readonly char[] PathSeparators = { '\n', ':' };
        private static readonly char[] Blanks = { ' ', '\t' };
        private static readonly char[] ConfSeparators = { ' ', '\t', ':', ',' };
        private static readonly System.Buffers.SearchValues<char> Wildcards = System.Buffers.SearchValues.Create("*?");

        /// <summary>Searches <paramref name="rootfs"/>; <paramref name="elfOf"/> reads (and caches) an entry's ELF headers.</summary>
        public LibrarySearch(Rootfs rootfs, Func<RootfsEntry, ElfFile?> elfOf)
        {
            this.rootfs = rootfs;
            this.elfOf = elfOf;
        }

        /// <summary>The multiarch triplets Debian and Ubuntu use for an ELF machine.</summary>
        public static IReadOnlyList<string> Triplets(int machine, bool is64, bool littleEndian) => machine switch
        {
            62 => new[] { "x86_64-linux-gnu" },
            3 => new[] { "i386-linux-gnu", "i686-linux-gnu" },
            183 => new[] { "aarch64-linux-gnu" },
            40 => new[] { "arm-linux-gnueabihf", "arm-linux-gnueabi" },
            243 => new[] { "riscv64-linux-gnu" },
            21 => littleEndian ? new[] { "powerpc64le-linux-gnu" } : new[] { "powerpc64-linux-gnu" },
            22 => new[] { "s390x-linux-gnu" },
            8 => is64 ? new[] { "mips64el-linux-gnuabi64" } : new[] { "mipsel-linux-gnu" },
            258 => new[] { "loongarch64-linux-gnu" },
            _ => Array.Empty<string>(),
        };

        /// <summary>
        /// The entry <paramref name="name"/> (a DT_NEEDED value) resolves to for <paramref name="requester"/>
        /// (at <paramref name="requesterPath"/>) loaded by the program <paramref name="executable"/>; null when not found.
        /// </summary>
        public RootfsEntry? Find(string name, ElfFile requester, string requesterPath, ElfFile executable)
        {
            if (name.Contains('/', StringComparison.Ordinal))
            {
                var direct = rootfs.Resolve(name);
                return direct?.Type == EntryType.File ? direct : null;
            }
            var dirs = new List<string>();
            string origin = RootfsPath.Parent(requesterPath);
            if (requester.RunPath.Count == 0)
            {
                dirs.AddRange(requester.RPath.Select(d => Expand(d, origin)));
                if (!ReferenceEquals(requester, executable) && executable.RunPath.Count == 0)
                {
                    dirs.AddRange(executable.RPath);
                }
            }
            dirs.AddRange(requester.RunPath.Select(d => Expand(d, origin)));
            string key = string.Join(':', dirs) + "\0" + requester.Machine + (requester.Is64 ? "/64" : "/32") + "\0" + executable.Interpreter + "\0" + name;
            if (memo.TryGetValue(key, out var cached))
            {
                return cached;
            }
            dirs.AddRange(SystemDirectories(requester, executable.Interpreter));
            RootfsEntry? found = null;
            foreach (string dir in dirs.Where(d => d.StartsWith('/')).Distinct(StringComparer.Ordinal))
            {
                // Resolved as inside the VM: '/../../opt/lib' is /opt/lib, never PathOutsideRoot.
                var candidate = rootfs.Resolve(dir + "/" + name);
                if (candidate?.Type != EntryType.File)
                {
                    continue;
                }
                var elf = elfOf(candidate);
                if (elf is not null && elf.Problem is null && (elf.Is64 != requester.Is64 || elf.Machine != requester.Machine))
                {
                    continue;
                }
                found = candidate;
                break;
            }
            memo[key] = found;
            return found;
        }

        private static string Expand(string dir, string origin) =>
            dir.Replace("${ORIGIN}", origin, StringComparison.Ordinal).Replace("$ORIGIN", origin, StringComparison.Ordinal);

        private IEnumerable<string> SystemDirectories(ElfFile elf, string? interpreter)
        {
            string? musl = interpreter is null ? null : MuslArch(interpreter);
            if (musl is not null)
            {
                foreach (string d in MuslPath(musl))
                {
                    yield return d;
                }
            }
            foreach (string d in LdSoConf())
            {
                yield return d;
            }
            foreach (string t in Triplets(elf.Machine, elf.Is64, elf.LittleEndian))
            {
                yield return "/lib/" + t;
                yield return "/usr/lib/" + t;
            }
            if (elf.Is64)
            {
                yield return "/lib64";
                yield return "/usr/lib64";
            }
            yield return "/lib";
            yield return "/usr/lib";
            if (!elf.Is64)
            {
                yield return "/lib32";
                yield return "/usr/lib32";
            }
            yield return "/usr/local/lib";
        }

        private static string? MuslArch(string interpreter)
        {
            // Confined, as the kernel reads PT_INTERP inside the VM: '/../lib/ld-musl-x86_64.so.1' is fine.
            string name = RootfsPath.Name(RootfsPath.Confine(interpreter));
            const string prefix = "ld-musl-";
            if (!name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return null;
            }
            int dot = name.IndexOf(".so", StringComparison.Ordinal);
            return dot > prefix.Length ? name[prefix.Length..dot] : null;
        }

        private List<string> MuslPath(string arch)
        {
            if (!muslPaths.TryGetValue(arch, out var dirs))
            {
                dirs = new List<string>();
                string? text = ReadText("/etc/ld-musl-" + arch + ".path");
                if (text is not null)
                {
                    dirs.AddRange(text.Split(PathSeparators, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                }
                muslPaths[arch] = dirs;
            }
            return dirs;
        }

        private List<string> LdSoConf()
        {
            if (ldSoConf is null)
            {
                ldSoConf = new List<string>();
                ReadConf("/etc/ld.so.conf", ldSoConf, 0);
            }
            return ldSoConf;
        }

        private void ReadConf(string path, List<string> dirs, int depth)
        {
            if (depth > 8)
            {
                return;
            }
            string? text = ReadText(path);
            if (text is null)
            {
                return;
            }
            foreach (string raw in text.Split('\n'))
            {
                int hash = raw.IndexOf('#', StringComparison.Ordinal);
                string line = (hash >= 0 ? raw[..hash] : raw).Trim();
                if (line.Length == 0)
                {
                    continue;
                }
                if (line.StartsWith("include", StringComparison.Ordinal) && line.Length > 7 && char.IsWhiteSpace(line[7]))
                {
                    foreach (string pattern in line[8..].Split(Blanks, StringSplitOptions.RemoveEmptyEntries))
                    {
                        // As ldconfig: a relative pattern is read from the including file's directory.
                        // '..' stays inside the root, as it would inside the VM.
                        string absolute = RootfsPath.Confine(pattern.StartsWith('/') ? pattern : RootfsPath.Confine(path) + "/../" + pattern);
                        foreach (string file in Glob(absolute))
                        {
                            ReadConf(file, dirs, depth + 1);
                        }
                    }
                    continue;
                }
                if (line.StartsWith("hwcap", StringComparison.Ordinal))
                {
                    continue;
                }
                dirs.AddRange(line.Split(ConfSeparators, StringSplitOptions.RemoveEmptyEntries).Where(d => d.StartsWith('/')));
            }
        }

        /// <summary>Expands a '*' and '?' pattern in the last component only, sorted as glob(3) sorts.</summary>
        private IEnumerable<string> Glob(string pattern)
        {
            string normalized = RootfsPath.Confine(pattern);
            string name = RootfsPath.Name(normalized);
            if (name.AsSpan().IndexOfAny(Wildcards) < 0)
            {
                return new[] { normalized };
            }
            string dir = RootfsPath.Parent(normalized);
            var resolvedDir = rootfs.Resolve(dir);
            if (resolvedDir?.Type != EntryType.Directory)
            {
                return Array.Empty<string>();
            }
            return rootfs.GetChildren(resolvedDir.Path)
                .Where(e => Matches(name, e.Name))
                .Select(e => RootfsPath.Combine(dir, e.Name))
                .ToList();
        }

        private static bool Matches(string pattern, string name)
        {
            if (name.StartsWith('.') && !pattern.StartsWith('.'))
            {
                return false;
            }
            int p = 0, n = 0, star = -1, mark = 0;
            while (n < name.Length)
            {
                if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == name[n]))
                {
                    p++;
                    n++;
                }
                else if (p < pattern.Length && pattern[p] == '*')
                {
                    star = p++;
                    mark = n;
                }
                else if (star >= 0)
                {
                    p = star + 1;
                    n = ++mark;
                }
                else
                {
                    return false;
                }
            }
            while (p < pattern.Length && pattern[p] == '*')
            {
                p++;
            }
            return p == pattern.Length;
        }

        /// <summary>A small text file of the rootfs (at most 64 KiB read), or null.</summary>
        internal string? ReadText(string path) => RootfsText.Read(rootfs, path, 64 * 1024);
    }

    /// <summary>Reads small text files of a rootfs (configuration files, script heads).</summary>
    internal static class RootfsText
    {
        public static string? Read(Rootfs rootfs, string path, int maxBytes)
        {
            var entry = rootfs.Resolve(path);
            if (entry?.Type != EntryType.File || entry.Content is null)
            {
                return null;
            }
            try
            {
                using var reader = new ContentReader();
                return Encoding.UTF8.GetString(reader.ReadPrefix(entry.Content, maxBytes));
            }
            catch (System.IO.IOException)
            {
                return null;
            }
            catch (Errors.InitramfsException)
            {
                return null;
            }
        }
    }
}
