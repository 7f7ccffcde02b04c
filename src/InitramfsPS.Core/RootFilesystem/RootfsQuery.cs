using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using InitramfsPS.Errors;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>
    /// A path pattern inside a rootfs: shell-style <c>*</c>, <c>?</c> and <c>[...]</c> within one
    /// component, and <c>**</c> for any number of components (<c>/usr/**/__pycache__</c>).
    /// Patterns are anchored at the root; a relative pattern is read from the root too.
    /// </summary>
    internal sealed class RootfsGlob
    {
        private readonly Regex regex;

        /// <summary>Compiles <paramref name="pattern"/>.</summary>
        public RootfsGlob(string pattern)
        {
            Pattern = pattern;
            var sb = new StringBuilder("^");
            var parts = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
            if (parts.Contains(".."))
            {
                throw new InitramfsException("PatternInvalid", FailureKind.InvalidArgument, $"The pattern '{pattern}' uses '..'; patterns are matched from the root.", pattern);
            }
            foreach (string part in parts)
            {
                sb.Append(part == "**" ? "(?:/[^/]+)*" : "/" + Segment(part));
            }
            if (parts.Count == 0)
            {
                sb.Append('/');
            }
            sb.Append(@"\z");
            regex = new Regex(sb.ToString(), RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }

        /// <summary>The pattern as given.</summary>
        public string Pattern { get; }

        /// <summary>Whether a text has wildcard characters (and so is a pattern, not a path).</summary>
        public static bool HasWildcards(string text) => text.AsSpan().IndexOfAny(WildcardChars) >= 0;

        private static readonly System.Buffers.SearchValues<char> WildcardChars = System.Buffers.SearchValues.Create("*?[");

        /// <summary>Whether a normalised rootfs path matches.</summary>
        public bool IsMatch(string path) => regex.IsMatch(path);

        /// <summary>A matcher for one path component (<c>*</c>, <c>?</c>, <c>[...]</c>, no '/').</summary>
        public static Regex Component(string glob) => new("^" + Segment(glob) + @"\z", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

        private static string Segment(string glob)
        {
            var sb = new StringBuilder();
            for (int i = 0; i < glob.Length; i++)
            {
                char c = glob[i];
                switch (c)
                {
                    case '*':
                        sb.Append("[^/]*");
                        break;
                    case '?':
                        sb.Append("[^/]");
                        break;
                    case '[':
                        // A set holds at least one character: "[]]" is the set of ']'; an unclosed '[' is literal.
                        int end = i + 2 < glob.Length ? glob.IndexOf(']', i + 2) : -1;
                        if (end < 0)
                        {
                            sb.Append(@"\[");
                            break;
                        }
                        string set = glob[(i + 1)..end];
                        sb.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                        i = end;
                        break;
                    default:
                        sb.Append(Regex.Escape(c.ToString()));
                        break;
                }
            }
            return sb.ToString();
        }
    }

    /// <summary>
    /// Finds entries of a rootfs by path or pattern, as Get-ChildItem finds files, with paths
    /// resolved as the kernel resolves them inside the VM (<see cref="Rootfs.RealPath"/>): symlinks in
    /// parent components are followed (merged /usr: <c>/bin/bash</c> is <c>/usr/bin/bash</c>), the
    /// last component is the entry itself unless the path ends in '/'.
    /// </summary>
    internal static class RootfsQuery
    {
        /// <summary>
        /// The entries <paramref name="pathOrPattern"/> names. A plain path names one entry; for a
        /// directory, <paramref name="listDirectory"/> gives its children instead (Get-ChildItem's
        /// habit). A pattern names every entry that matches. With <paramref name="recurse"/>, what
        /// is named comes with everything below it. Null when a plain path does not exist.
        /// </summary>
        public static IReadOnlyList<RootfsEntry>? Find(Rootfs rootfs, string pathOrPattern, bool recurse, bool listDirectory)
        {
            IEnumerable<RootfsEntry> named;
            if (RootfsGlob.HasWildcards(pathOrPattern))
            {
                named = Glob(rootfs, pathOrPattern);
            }
            else
            {
                var entry = rootfs.GetRealEntry(pathOrPattern);
                if (entry is null)
                {
                    return null;
                }
                if (entry.Type == EntryType.Directory && listDirectory)
                {
                    return recurse ? rootfs.GetEntriesBelow(entry.Path).ToList() : rootfs.GetChildren(entry.Path).ToList();
                }
                named = new[] { entry };
            }
            if (!recurse)
            {
                return named.ToList();
            }
            // Entries are one object per node, so they are told apart by reference (no hashing of
            // long paths); a directory already listed came with everything below it, and is not
            // walked again: '/**' -Recurse on a chain n deep lists n entries, not n²/2.
            var result = new List<RootfsEntry>();
            var seen = new HashSet<RootfsEntry>(ReferenceEqualityComparer.Instance);
            foreach (var e in named)
            {
                if (!seen.Add(e))
                {
                    continue;
                }
                result.Add(e);
                if (e.Type == EntryType.Directory)
                {
                    result.AddRange(rootfs.GetEntriesBelow(e.Path).Where(seen.Add));
                }
            }
            return result;
        }

        /// <summary>
        /// The entries a pattern matches, in archive order, each once. Matched component by component
        /// from the root: a symlink is followed where more components come after it (or the pattern
        /// ends in '/'), so <c>/lib/x86_64-linux-gnu/libc.so*</c> finds what <c>/usr/lib</c> holds;
        /// <c>**</c> descends real directories only, as a shell's globstar does, so a link loop
        /// cannot make it run on.
        /// </summary>
        public static IReadOnlyList<RootfsEntry> Glob(Rootfs rootfs, string pattern)
        {
            var parts = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
            if (parts.Contains(".."))
            {
                throw new InitramfsException("PatternInvalid", FailureKind.InvalidArgument, $"The pattern '{RootfsPath.Printable(pattern)}' uses '..'; patterns are matched from the root.", pattern);
            }
            bool followLast = pattern.EndsWith('/');
            // Directories reached so far, by their real path.
            var current = new List<RootfsEntry> { rootfs.GetEntry(RootfsPath.Root)! };
            for (int i = 0; i < parts.Count; i++)
            {
                bool last = i == parts.Count - 1;
                bool follow = !last || followLast;
                var next = new List<RootfsEntry>();
                var inNext = new HashSet<RootfsEntry>(ReferenceEqualityComparer.Instance);
                void Add(RootfsEntry? e)
                {
                    if (e is not null && (last || e.Type == EntryType.Directory) && inNext.Add(e))
                    {
                        next.Add(e);
                    }
                }
                foreach (var dir in current)
                {
                    if (parts[i] == "**")
                    {
                        Add(dir);
                        foreach (var below in rootfs.GetEntriesBelow(dir.Path))
                        {
                            Add(below);
                        }
                    }
                    else if (!RootfsGlob.HasWildcards(parts[i]))
                    {
                        Add(rootfs.GetRealEntry(RootfsPath.Combine(dir.Path, parts[i]), follow));
                    }
                    else
                    {
                        var segment = RootfsGlob.Component(parts[i]);
                        foreach (var child in rootfs.GetChildren(dir.Path))
                        {
                            if (segment.IsMatch(child.Name))
                            {
                                Add(follow && child.Type == EntryType.Symlink ? rootfs.GetRealEntry(child.Path, followLast: true) : child);
                            }
                        }
                    }
                }
                current = next;
                if (current.Count == 0)
                {
                    break;
                }
            }
            if (parts.Count == 0)
            {
                return current;
            }
            // Usually found in archive order already ('**' walks in it): checking costs a pass.
            for (int i = 1; i < current.Count; i++)
            {
                if (RootfsPath.CompareArchiveOrder(current[i - 1].Path, current[i].Path) > 0)
                {
                    current.Sort((a, b) => RootfsPath.CompareArchiveOrder(a.Path, b.Path));
                    break;
                }
            }
            return current;
        }
    }
}
