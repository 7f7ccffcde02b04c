using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Init;
using InitramfsPS.RootFilesystem;

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
    /// <remarks>
    /// An image can hold hostile ELF files and configuration, so every cost here is bounded by the
    /// size of the input, never by a product of its parts: an object's search list is built once
    /// (each directory resolved once, duplicates and directories that do not exist dropped), a long
    /// list is searched through an index of the rootfs by file name, ld.so.conf files are read once
    /// each within the bounds below, and the long loops check for cancellation.
    /// </remarks>
    internal sealed class LibrarySearch
    {
        /// <summary>
        /// A search list longer than this is searched through the name index: a lookup then costs the
        /// directories that hold the name, not the length of the list (a hostile DT_RUNPATH of 160,000
        /// entries times 16,000 DT_NEEDED took minutes when each list was walked).
        /// </summary>
        private const int IndexedListLength = 64;

        /// <summary>
        /// The most /etc/ld.so.conf files read (each once, whatever the includes say). A real system
        /// has a few dozen; the bound keeps a directory of thousands of included files cheap.
        /// </summary>
        public const int MaxConfFiles = 256;

        /// <summary>
        /// The deepest nesting of include lines followed. Real configurations nest once
        /// (ld.so.conf includes ld.so.conf.d/*.conf); ldconfig itself has no bound and recurses forever
        /// on a file that includes itself.
        /// </summary>
        public const int MaxConfDepth = 16;

        /// <summary>The most directories taken from ld.so.conf files (real systems list a handful).</summary>
        public const int MaxConfDirectories = 4096;

        /// <summary>
        /// The most directory entries the include patterns of ld.so.conf files may be matched against
        /// in all: thousands of include lines against a directory of thousands of files stop here.
        /// </summary>
        public const int MaxConfGlobMatches = 1 << 20;

        /// <summary>How many steps a loop takes between two looks at the cancellation token.</summary>
        internal const int CancellationInterval = 4096;

        private readonly Rootfs rootfs;
        private readonly Func<RootfsEntry, ElfFile?> elfOf;
        private readonly CancellationToken cancellationToken;
        private readonly Dictionary<string, SearchList> lists = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<string>> muslPaths = new(StringComparer.Ordinal);
        private List<string>? ldSoConf;
        private Dictionary<string, List<string>>? directoriesByName;
        private static readonly char[] PathSeparators = { '\n', ':' };
        private static readonly char[] Blanks = { ' ', '\t' };
        private static readonly char[] ConfSeparators = { ' ', '\t', ':', ',' };
        private static readonly System.Buffers.SearchValues<char> Wildcards = System.Buffers.SearchValues.Create("*?");

        /// <summary>Searches <paramref name="rootfs"/>; <paramref name="elfOf"/> reads (and caches) an entry's ELF headers.</summary>
        public LibrarySearch(Rootfs rootfs, Func<RootfsEntry, ElfFile?> elfOf, CancellationToken cancellationToken = default)
        {
            this.rootfs = rootfs;
            this.elfOf = elfOf;
            this.cancellationToken = cancellationToken;
        }

        /// <summary>
        /// Why /etc/ld.so.conf was not read whole (a bound above was reached), or null. The directories
        /// read before the bound are searched.
        /// </summary>
        public string? ConfProblem { get; private set; }

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
        /// (at <paramref name="requesterPath"/>) loaded by the program <paramref name="executable"/>
        /// (at <paramref name="executablePath"/>); null when not found.
        /// </summary>
        public RootfsEntry? Find(string name, ElfFile requester, string requesterPath, ElfFile executable, string executablePath)
        {
            if (name.Contains('/', StringComparison.Ordinal))
            {
                // As ld.so: a name with a slash is a path (relative to the working directory, / for init).
                var direct = rootfs.Resolve(name);
                return direct?.Type == EntryType.File ? direct : null;
            }
            var list = ListFor(requester, requesterPath, executable, executablePath);
            if (list.Found.TryGetValue(name, out var found))
            {
                return found;
            }
            found = list.Position is null ? Scan(list, name, requester) : SearchIndexed(list, name, requester);
            list.Found[name] = found;
            return found;
        }

        /// <summary>One object's search list: the real paths of the directories that exist, in order, each once.</summary>
        private sealed class SearchList
        {
            public readonly List<string> Directories = new();
            public Dictionary<string, int>? Position;
            public readonly Dictionary<string, RootfsEntry?> Found = new(StringComparer.Ordinal);
        }

        private SearchList ListFor(ElfFile requester, string requesterPath, ElfFile executable, string executablePath)
        {
            // What the list depends on: the requester (its RPATH/RUNPATH, $ORIGIN, class and machine,
            // all fixed by its path), the executable's RPATH when the loader uses it, and the musl arch.
            bool useExecutableRPath = requester.RunPath.Count == 0 && !ReferenceEquals(requester, executable)
                && executable.RunPath.Count == 0 && executable.RPath.Count > 0;
            string? musl = executable.Interpreter is null ? null : MuslArch(executable.Interpreter);
            string key = requesterPath + "\0" + (useExecutableRPath ? executablePath : string.Empty) + "\0" + musl;
            if (lists.TryGetValue(key, out var list))
            {
                return list;
            }
            list = new SearchList();
            var raw = new List<string>();
            string origin = RootfsPath.Parent(requesterPath);
            if (requester.RunPath.Count == 0)
            {
                raw.AddRange(requester.RPath.Select(d => Expand(d, origin)));
                if (useExecutableRPath)
                {
                    raw.AddRange(executable.RPath.Select(d => Expand(d, RootfsPath.Parent(executablePath))));
                }
            }
            raw.AddRange(requester.RunPath.Select(d => Expand(d, origin)));
            raw.AddRange(SystemDirectories(requester, musl));
            var seenRaw = new HashSet<string>(StringComparer.Ordinal);
            var seenReal = new HashSet<string>(StringComparer.Ordinal);
            int steps = 0;
            foreach (string dir in raw)
            {
                if (++steps % CancellationInterval == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                // Relative entries are relative to the working directory at run time: not searched.
                if (!dir.StartsWith('/') || !seenRaw.Add(dir))
                {
                    continue;
                }
                var resolved = rootfs.Resolve(dir);
                if (resolved?.Type == EntryType.Directory && seenReal.Add(resolved.Path))
                {
                    list.Directories.Add(resolved.Path);
                }
            }
            if (list.Directories.Count > IndexedListLength)
            {
                list.Position = new Dictionary<string, int>(list.Directories.Count, StringComparer.Ordinal);
                for (int i = 0; i < list.Directories.Count; i++)
                {
                    list.Position[list.Directories[i]] = i;
                }
            }
            lists[key] = list;
            return list;
        }

        private RootfsEntry? Scan(SearchList list, string name, ElfFile requester)
        {
            foreach (string dir in list.Directories)
            {
                if (Candidate(dir, name, requester) is { } found)
                {
                    return found;
                }
            }
            return null;
        }

        /// <summary>The first directory of a long list that holds a usable <paramref name="name"/>: only the directories that hold the name are looked at.</summary>
        private RootfsEntry? SearchIndexed(SearchList list, string name, ElfFile requester)
        {
            if (!DirectoriesByName().TryGetValue(name, out var holders))
            {
                return null;
            }
            var positions = new List<int>();
            foreach (string dir in holders)
            {
                if (list.Position!.TryGetValue(dir, out int position))
                {
                    positions.Add(position);
                }
            }
            positions.Sort();
            foreach (int position in positions)
            {
                if (Candidate(list.Directories[position], name, requester) is { } found)
                {
                    return found;
                }
            }
            return null;
        }

        /// <summary>What the loader would load for <paramref name="name"/> in <paramref name="dir"/> (a real path), or null.</summary>
        private RootfsEntry? Candidate(string dir, string name, ElfFile requester)
        {
            var candidate = rootfs.Resolve(RootfsPath.Combine(dir, name));
            if (candidate?.Type != EntryType.File)
            {
                return null;
            }
            var elf = elfOf(candidate);
            return elf is not null && elf.Problem is null && (elf.Is64 != requester.Is64 || elf.Machine != requester.Machine) ? null : candidate;
        }

        /// <summary>For each name in the rootfs, the directories (real paths) that hold an entry of that name; built once, when a long list needs it.</summary>
        private Dictionary<string, List<string>> DirectoriesByName()
        {
            if (directoriesByName is null)
            {
                var index = new Dictionary<string, List<string>>(StringComparer.Ordinal);
                int steps = 0;
                foreach (var e in rootfs.GetEntries())
                {
                    if (++steps % CancellationInterval == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                    }
                    if (e.Path == RootfsPath.Root)
                    {
                        continue;
                    }
                    string name = RootfsPath.Name(e.Path);
                    if (!index.TryGetValue(name, out var dirs))
                    {
                        index[name] = dirs = new List<string>(1);
                    }
                    dirs.Add(RootfsPath.Parent(e.Path));
                }
                directoriesByName = index;
            }
            return directoriesByName;
        }

        private static string Expand(string dir, string origin) =>
            dir.Replace("${ORIGIN}", origin, StringComparison.Ordinal).Replace("$ORIGIN", origin, StringComparison.Ordinal);

        private IEnumerable<string> SystemDirectories(ElfFile elf, string? musl)
        {
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
                var conf = new ConfReading();
                ReadConf("/etc/ld.so.conf", 0, conf);
                ldSoConf = conf.Directories;
                ConfProblem = conf.Problem;
            }
            return ldSoConf;
        }

        /// <summary>The state of one reading of /etc/ld.so.conf and its includes.</summary>
        private sealed class ConfReading
        {
            public readonly List<string> Directories = new();
            public readonly HashSet<string> FilesRead = new(StringComparer.Ordinal);
            public readonly HashSet<string> PatternsExpanded = new(StringComparer.Ordinal);
            public int GlobMatches;
            public string? Problem;
        }

        private void ReadConf(string path, int depth, ConfReading conf)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (conf.Problem is not null)
            {
                return;
            }
            // Each file once, by the entry it resolves to: a file that includes itself, or a cycle
            // through ld.so.conf.d, is read once (it grew exponentially before).
            var entry = rootfs.Resolve(path);
            if (entry?.Type != EntryType.File || conf.FilesRead.Contains(entry.Path))
            {
                return;
            }
            if (depth > MaxConfDepth)
            {
                conf.Problem = $"{RootfsPath.Printable(path)} is included deeper than {MaxConfDepth} levels";
                return;
            }
            if (conf.FilesRead.Count >= MaxConfFiles)
            {
                conf.Problem = $"it includes more than {MaxConfFiles} files";
                return;
            }
            conf.FilesRead.Add(entry.Path);
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
                        if (!conf.PatternsExpanded.Add(absolute))
                        {
                            continue; // every file it names was read already
                        }
                        foreach (string file in Glob(absolute, conf))
                        {
                            ReadConf(file, depth + 1, conf);
                        }
                    }
                    continue;
                }
                if (line.StartsWith("hwcap", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (string dir in line.Split(ConfSeparators, StringSplitOptions.RemoveEmptyEntries))
                {
                    if (!dir.StartsWith('/'))
                    {
                        continue;
                    }
                    if (conf.Directories.Count >= MaxConfDirectories)
                    {
                        conf.Problem = $"it lists more than {MaxConfDirectories} directories";
                        return;
                    }
                    conf.Directories.Add(dir);
                }
            }
        }

        /// <summary>Expands a '*' and '?' pattern (normalised) in the last component only, sorted as glob(3) sorts.</summary>
        private IEnumerable<string> Glob(string normalized, ConfReading conf)
        {
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
            var matches = new List<string>();
            foreach (var e in rootfs.GetChildren(resolvedDir.Path))
            {
                if (++conf.GlobMatches > MaxConfGlobMatches)
                {
                    conf.Problem = $"its include patterns were matched against more than {MaxConfGlobMatches} file names";
                    break;
                }
                if (conf.GlobMatches % CancellationInterval == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                if (Matches(name, e.Name))
                {
                    matches.Add(RootfsPath.Combine(dir, e.Name));
                }
            }
            return matches;
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
        internal string? ReadText(string path) => RootfsLookup.ReadText(rootfs, path, 64 * 1024);
    }
}
