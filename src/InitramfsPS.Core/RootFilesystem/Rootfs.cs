using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using InitramfsPS.Images;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>
    /// A root file system held as metadata in memory: a tree of <see cref="RootfsEntry"/> whose file
    /// bytes stay where they are (layer, host file). Nothing is extracted to the host, so uid 0,
    /// setuid bits and device nodes survive for a non-root user, and no entry can land outside it.
    /// </summary>
    public sealed class Rootfs
    {
        /// <summary>
        /// A tree node. Nodes are shared between a rootfs and its clones: <see cref="Owner"/> is the
        /// token of the one rootfs that may change this node in place; any other copies the node
        /// (and its parents) first, so a clone costs O(1) and a change O(path × siblings).
        /// </summary>
        private sealed class Node
        {
            public Node(RootfsEntry entry, object owner)
            {
                Entry = entry;
                Owner = owner;
            }

            public RootfsEntry Entry;
            public Dictionary<string, Node>? Children;
            public readonly object Owner;

            /// <summary>A copy owned by <paramref name="owner"/> with the same entry and the same (shared) children.</summary>
            public Node CopyFor(object owner) => new(Entry, owner)
            {
                Children = Children is null ? null : new Dictionary<string, Node>(Children, StringComparer.Ordinal),
            };
        }

        private Node root;

        /// <summary>Identifies the nodes this rootfs may change in place; replaced when the tree becomes shared.</summary>
        private object token = new();

        /// <summary>An empty rootfs: just "/" (0755, root-owned).</summary>
        public Rootfs(OciImage? image = null)
        {
            Image = image;
            root = new Node(new RootfsEntry { Path = RootfsPath.Root, Type = EntryType.Directory, Mode = 0x1ED, Source = "generated" }, token)
            {
                Children = new Dictionary<string, Node>(StringComparer.Ordinal),
            };
            Count = 1;
        }

        private Rootfs(Rootfs other)
        {
            Image = other.Image;
            Origin = other.Origin;
            // Both now share every node: neither may change one in place any more.
            other.token = new object();
            root = other.root;
            Count = other.Count;
            Changes = new List<string>(other.Changes);
        }

        /// <summary>The image this rootfs was expanded from, if any.</summary>
        public OciImage? Image { get; }

        /// <summary>Where the rootfs came from when not from an image (an imported archive); null otherwise.</summary>
        public string? Origin { get; internal set; }

        /// <summary>The image reference or the origin, for tables and messages.</summary>
        public string Source => Image?.Reference.ToString() ?? Origin ?? "(none)";

        /// <summary>Number of entries, the root included.</summary>
        public int Count { get; private set; }

        /// <summary>What was done to the rootfs after expansion, in order (for people and reports).</summary>
        public List<string> Changes { get; private set; } = new();

        /// <summary>Sum of regular file sizes; the bytes of a hardlink group count once.</summary>
        public long Size
        {
            get
            {
                long total = 0;
                var seen = new HashSet<HardlinkGroup>(ReferenceEqualityComparer.Instance);
                foreach (var e in GetEntries())
                {
                    if (e.Type == EntryType.File && (e.Hardlink is null || seen.Add(e.Hardlink)))
                    {
                        total += e.Size;
                    }
                }
                return total;
            }
        }

        /// <summary>
        /// A copy sharing the tree, the immutable entries and the content references: O(1), no bytes
        /// copied. A change to either copies only the nodes on the path to what changes (and the
        /// child tables of those directories). The cmdlets that change a rootfs change a copy, so one
        /// expanded image can feed several variants.
        /// </summary>
        public Rootfs Clone() => new(this);

        /// <summary>The entry at <paramref name="path"/>, or null. The path is normalised; symlinks are not followed.</summary>
        public RootfsEntry? GetEntry(string path) => Find(RootfsPath.Normalize(path))?.Entry;

        /// <summary>Whether an entry exists at <paramref name="path"/>.</summary>
        public bool Contains(string path) => GetEntry(path) is not null;

        /// <summary>
        /// Every entry, parents before children, siblings in the byte order of their UTF-8 names: the
        /// order the archive is written in, so the same rootfs always gives the same bytes.
        /// </summary>
        public IEnumerable<RootfsEntry> GetEntries() => Walk(root);

        /// <summary>The entries directly inside a directory, sorted.</summary>
        public IEnumerable<RootfsEntry> GetChildren(string path)
        {
            var node = Find(RootfsPath.Normalize(path));
            return node?.Children is null ? Enumerable.Empty<RootfsEntry>() : Sorted(node.Children).Select(n => n.Entry);
        }

        /// <summary>Number of direct subdirectories (for a directory's link count).</summary>
        public int CountSubdirectories(string path)
        {
            var node = Find(path);
            return node?.Children?.Values.Count(c => c.Entry.Type == EntryType.Directory) ?? 0;
        }

        /// <summary>Symlinks followed in one path at most, as the kernel's MAXSYMLINKS.</summary>
        public const int MaxSymlinks = 40;

        /// <summary>
        /// Follows symlinks inside the rootfs (never outside it) to the entry a path finally names,
        /// as the kernel would after switching into this root. Null when it does not exist, a link
        /// dangles, or more than <see cref="MaxSymlinks"/> links are followed.
        /// </summary>
        public RootfsEntry? Resolve(string path)
        {
            if (!TryNormalize(path, out string normalized))
            {
                return null;
            }
            var walk = WalkPath(normalized, followLast: true);
            return walk.Loop ? null : walk.Node?.Entry;
        }

        /// <summary>
        /// The path an entry named by <paramref name="path"/> really has, resolved as the kernel
        /// resolves a path inside the VM: symlinks in the parent components are followed, an absolute
        /// target starting at the root of the rootfs and <c>..</c> never climbing above it; the last
        /// component is the name itself (as lstat, <c>ls -d</c> and <c>rm</c> take it) unless the
        /// path ends in '/' or <paramref name="followLast"/> is set. Components that do not exist are
        /// kept as written, so the result also says where a new entry would go
        /// (<c>/bin/x</c> is <c>/usr/bin/x</c> when <c>/bin</c> links to <c>usr/bin</c>).
        /// Throws SymlinkLoop after <see cref="MaxSymlinks"/> links; a typed path that is empty, holds
        /// NUL or climbs above the root by its own <c>..</c> is refused as <see cref="RootfsPath.Normalize"/>
        /// refuses it (<paramref name="errorIdPrefix"/>Invalid, <paramref name="errorIdPrefix"/>OutsideRoot).
        /// </summary>
        public string RealPath(string path, bool followLast = false, string errorIdPrefix = "Path")
        {
            RootfsPath.Normalize(path, errorIdPrefix);
            TryNormalize(path, out string rooted);
            var walk = WalkPath(rooted, followLast || path.EndsWith('/'));
            if (walk.Loop)
            {
                throw new InitramfsException("SymlinkLoop", FailureKind.InvalidData,
                    $"Resolving '{RootfsPath.Printable(path)}' in the rootfs followed more than {MaxSymlinks} symlinks; a link loops.", path);
            }
            return walk.Path;
        }

        /// <summary>The entry <see cref="RealPath"/> names, or null when none is there.</summary>
        public RootfsEntry? GetRealEntry(string path, bool followLast = false) => GetEntry(RealPath(path, followLast));

        /// <summary>Syntax only, with a leading '/': the walk reads '..' at the root as the root, as the kernel does inside the VM.</summary>
        private static bool TryNormalize(string path, out string normalized)
        {
            normalized = RootfsPath.Root;
            if (string.IsNullOrEmpty(path) || path.Contains('\0', StringComparison.Ordinal))
            {
                return false;
            }
            normalized = path.StartsWith('/') ? path : "/" + path;
            return true;
        }

        private readonly record struct PathWalk(string Path, Node? Node, bool Loop);

        /// <summary>
        /// The walk behind <see cref="RealPath"/> and <see cref="Resolve"/>: one pass over the
        /// components, with the target of each link followed pushed in front of what is left, so a
        /// path costs O(components + link targets) whatever the depth. <c>..</c> is taken physically
        /// (after a link, it leaves the link's target), as the kernel takes it.
        /// </summary>
        private PathWalk WalkPath(string path, bool followLast)
        {
            var pending = new Stack<string>();
            PushComponents(pending, path);
            var parts = new List<string>();
            // nodes[i] is the node of the first i parts, for as long as they exist.
            var nodes = new List<Node> { root };
            int links = 0;
            while (pending.Count > 0)
            {
                string part = pending.Pop();
                if (part == ".")
                {
                    continue;
                }
                if (part == "..")
                {
                    if (parts.Count > 0)
                    {
                        parts.RemoveAt(parts.Count - 1);
                        if (nodes.Count > parts.Count + 1)
                        {
                            nodes.RemoveAt(nodes.Count - 1);
                        }
                    }
                    continue;
                }
                bool last = pending.Count == 0;
                if (nodes.Count == parts.Count + 1 && nodes[^1].Children is { } children && children.TryGetValue(part, out var child))
                {
                    if (child.Entry.Type == EntryType.Symlink && (!last || followLast) && !string.IsNullOrEmpty(child.Entry.LinkTarget))
                    {
                        if (++links > MaxSymlinks)
                        {
                            return new PathWalk(Join(parts, part), null, Loop: true);
                        }
                        string target = child.Entry.LinkTarget!;
                        if (target.StartsWith('/'))
                        {
                            parts.Clear();
                            nodes.RemoveRange(1, nodes.Count - 1);
                        }
                        PushComponents(pending, target);
                        continue;
                    }
                    parts.Add(part);
                    nodes.Add(child);
                    continue;
                }
                parts.Add(part);
            }
            return new PathWalk(Join(parts, null), nodes.Count == parts.Count + 1 ? nodes[^1] : null, Loop: false);
        }

        private static void PushComponents(Stack<string> pending, string path)
        {
            var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            for (int i = parts.Length - 1; i >= 0; i--)
            {
                pending.Push(parts[i]);
            }
        }

        private static string Join(List<string> parts, string? extra)
        {
            if (parts.Count == 0 && extra is null)
            {
                return RootfsPath.Root;
            }
            var sb = new StringBuilder();
            foreach (string part in parts)
            {
                sb.Append('/').Append(part);
            }
            if (extra is not null)
            {
                sb.Append('/').Append(extra);
            }
            return sb.ToString();
        }

        /// <summary>
        /// Every entry in archive order (as <see cref="GetEntries"/>) with, for a directory, the number
        /// of directories directly in it (its link count is 2 more): one walk, where asking
        /// <see cref="CountSubdirectories"/> for each would cost the depth of each.
        /// </summary>
        internal IEnumerable<(RootfsEntry Entry, int Subdirectories)> GetEntriesWithSubdirectoryCounts()
        {
            var stack = new Stack<Node>();
            stack.Push(root);
            while (stack.Count > 0)
            {
                var node = stack.Pop();
                int subdirectories = 0;
                if (node.Children is { Count: > 0 })
                {
                    var sorted = Sorted(node.Children);
                    for (int i = sorted.Count - 1; i >= 0; i--)
                    {
                        stack.Push(sorted[i]);
                        if (sorted[i].Entry.Type == EntryType.Directory)
                        {
                            subdirectories++;
                        }
                    }
                }
                yield return (node.Entry, subdirectories);
            }
        }

        /// <summary>
        /// The entries of two rootfs side by side in archive order: each path once, with its entry in
        /// <paramref name="left"/> and in <paramref name="right"/> (null where it has none). One walk of
        /// both trees, merging the children of each directory by name: linear in the entries, where
        /// sorting full paths cost O(n log n × depth). With <paramref name="skipShared"/>, a subtree the
        /// two share (a copy not changed there) is left out whole: it is the same.
        /// </summary>
        internal static IEnumerable<(RootfsEntry? Left, RootfsEntry? Right)> Pair(Rootfs left, Rootfs right, bool skipShared)
        {
            var stack = new Stack<(Node? Left, Node? Right)>();
            stack.Push((left.root, right.root));
            var merged = new List<(Node?, Node?)>();
            while (stack.Count > 0)
            {
                var (a, b) = stack.Pop();
                if (skipShared && ReferenceEquals(a, b))
                {
                    continue;
                }
                yield return (a?.Entry, b?.Entry);
                var x = a?.Children is { Count: > 0 } ac ? SortedPairs(ac) : null;
                var y = b?.Children is { Count: > 0 } bc ? SortedPairs(bc) : null;
                merged.Clear();
                int i = 0, j = 0, xs = x?.Count ?? 0, ys = y?.Count ?? 0;
                while (i < xs || j < ys)
                {
                    int c = i >= xs ? 1 : j >= ys ? -1 : Utf8Order.Compare(x![i].Key, y![j].Key);
                    merged.Add(c < 0 ? (x![i++].Value, null) : c > 0 ? (null, y![j++].Value) : (x![i++].Value, y![j++].Value));
                }
                for (int k = merged.Count - 1; k >= 0; k--)
                {
                    stack.Push(merged[k]);
                }
            }
        }

        /// <summary>Every entry below a directory (not the directory itself), in archive order; empty for anything else.</summary>
        public IEnumerable<RootfsEntry> GetEntriesBelow(string path)
        {
            var node = Find(RootfsPath.Normalize(path));
            return node?.Children is null ? Enumerable.Empty<RootfsEntry>() : Walk(node).Skip(1);
        }

        /// <summary>
        /// Puts <paramref name="entry"/> at its path. A directory over a directory keeps the children;
        /// anything else replaces what was there, subtree included. Missing parents are created from
        /// <paramref name="parentTemplate"/> when given; otherwise a missing parent is an error.
        /// A parent that exists but is not a directory is always an error: symlinks are never followed.
        /// </summary>
        public void Set(RootfsEntry entry, RootfsEntry? parentTemplate)
        {
            if (entry.Path == RootfsPath.Root)
            {
                if (entry.Type != EntryType.Directory)
                {
                    throw new InitramfsException("RootNotDirectory", FailureKind.InvalidData, "The root of a rootfs can only be a directory.", entry.Path);
                }
                WritableRoot().Entry = entry;
                return;
            }
            Node parent = EnsureParent(entry.Path, parentTemplate);
            string name = RootfsPath.Name(entry.Path);
            parent.Children ??= new Dictionary<string, Node>(StringComparer.Ordinal);
            if (parent.Children.TryGetValue(name, out var existing))
            {
                existing = Writable(parent, name, existing);
                existing.Entry = entry;
                if (entry.Type != EntryType.Directory && existing.Children is not null)
                {
                    Count -= CountBelow(existing);
                    existing.Children = null;
                }
                else if (entry.Type == EntryType.Directory && existing.Children is null)
                {
                    existing.Children = new Dictionary<string, Node>(StringComparer.Ordinal);
                }
                return;
            }
            var node = new Node(entry, token);
            if (entry.Type == EntryType.Directory)
            {
                node.Children = new Dictionary<string, Node>(StringComparer.Ordinal);
            }
            parent.Children[name] = node;
            Count++;
        }

        /// <summary>Removes the entry at <paramref name="path"/> with everything below it; returns the removed entries.</summary>
        public IReadOnlyList<RootfsEntry> Remove(string path)
        {
            string normalized = RootfsPath.Normalize(path);
            if (normalized == RootfsPath.Root)
            {
                throw new InitramfsException("RootNotRemovable", FailureKind.InvalidArgument, "The root of a rootfs cannot be removed.", path);
            }
            string name = RootfsPath.Name(normalized);
            if (Find(RootfsPath.Parent(normalized))?.Children is not { } children || !children.TryGetValue(name, out var node))
            {
                return Array.Empty<RootfsEntry>();
            }
            var removed = Walk(node).ToList();
            FindWritable(RootfsPath.Parent(normalized))!.Children!.Remove(name);
            Count -= removed.Count;
            return removed;
        }

        /// <summary>Empties a directory (an opaque whiteout); returns how many entries went.</summary>
        public int ClearDirectory(string path)
        {
            string normalized = RootfsPath.Normalize(path);
            var node = Find(normalized);
            if (node?.Children is null || node.Children.Count == 0)
            {
                return 0;
            }
            int removed = CountBelow(node);
            FindWritable(normalized)!.Children!.Clear();
            Count -= removed;
            return removed;
        }

        /// <summary>A short description: the image it came from, entry count and size.</summary>
        public override string ToString()
        {
            string from = Image is not null ? $"rootfs of {Image.Reference}" : Origin is not null ? $"rootfs of {Origin}" : "empty rootfs";
            string changes = Changes.Count == 0 ? string.Empty : string.Create(CultureInfo.InvariantCulture, $", {Changes.Count} changes");
            return string.Create(CultureInfo.InvariantCulture, $"{from} ({Count} entries, {Units.Bytes(Size)}{changes})");
        }

        /// <summary>
        /// The directory node that is to hold <paramref name="path"/>, its missing parents created
        /// from <paramref name="template"/>. One pass over the components: the path of a parent is
        /// made (a prefix of the parent path) only for a parent that is created or in the way, so a
        /// deep path costs time linear in its length, not in its length times its depth.
        /// </summary>
        private Node EnsureParent(string path, RootfsEntry? template)
        {
            Node node = WritableRoot();
            string parentPath = RootfsPath.Parent(path);
            int end = 0;
            foreach (string part in RootfsPath.Split(parentPath))
            {
                // parentPath[..end] is the directory this part names.
                end += 1 + part.Length;
                node.Children ??= new Dictionary<string, Node>(StringComparer.Ordinal);
                if (!node.Children.TryGetValue(part, out var child))
                {
                    string next = parentPath[..end];
                    if (template is null)
                    {
                        throw new InitramfsException("ParentMissing", FailureKind.NotFound,
                            $"The directory '{RootfsPath.Printable(next)}' does not exist in the rootfs.", next);
                    }
                    child = new Node(template with { Path = next, Type = EntryType.Directory, Content = null, Size = 0, LinkTarget = null, Hardlink = null }, token)
                    {
                        Children = new Dictionary<string, Node>(StringComparer.Ordinal),
                    };
                    node.Children[part] = child;
                    Count++;
                }
                else if (child.Entry.Type != EntryType.Directory)
                {
                    string next = parentPath[..end];
                    string what = child.Entry.Type == EntryType.Symlink ? "a symlink (symlinks are never followed)" : "not a directory";
                    throw new InitramfsException(child.Entry.Type == EntryType.Symlink ? "ParentIsSymlink" : "ParentNotDirectory",
                        child.Entry.Type == EntryType.Symlink ? FailureKind.Security : FailureKind.InvalidData,
                        $"Cannot put '{RootfsPath.Printable(path)}': its parent '{RootfsPath.Printable(next)}' is {what}.", path);
                }
                else
                {
                    child = Writable(node, part, child);
                }
                node = child;
            }
            return node;
        }

        /// <summary>
        /// The first entry on the way to <paramref name="normalizedPath"/> (itself included) that is
        /// not a directory; null when every one that exists is (the walk stops at the first missing
        /// one). One pass, linear in the length of the path.
        /// </summary>
        internal RootfsEntry? FirstNonDirectoryOnPath(string normalizedPath)
        {
            Node node = root;
            foreach (string part in RootfsPath.Split(normalizedPath))
            {
                if (node.Children is null || !node.Children.TryGetValue(part, out var child))
                {
                    return null;
                }
                if (child.Entry.Type != EntryType.Directory)
                {
                    return child.Entry;
                }
                node = child;
            }
            return null;
        }

        private Node? Find(string normalizedPath)
        {
            Node node = root;
            foreach (string part in RootfsPath.Split(normalizedPath))
            {
                if (node.Children is null || !node.Children.TryGetValue(part, out var child))
                {
                    return null;
                }
                node = child;
            }
            return node;
        }

        /// <summary>Like <see cref="Find"/>, but copies every shared node on the way so the one found may be changed.</summary>
        private Node? FindWritable(string normalizedPath)
        {
            Node node = WritableRoot();
            foreach (string part in RootfsPath.Split(normalizedPath))
            {
                if (node.Children is null || !node.Children.TryGetValue(part, out var child))
                {
                    return null;
                }
                node = Writable(node, part, child);
            }
            return node;
        }

        private Node WritableRoot()
        {
            if (!ReferenceEquals(root.Owner, token))
            {
                root = root.CopyFor(token);
            }
            return root;
        }

        /// <summary><paramref name="child"/> (named <paramref name="name"/> in <paramref name="parent"/>, which this rootfs owns), copied first if shared.</summary>
        private Node Writable(Node parent, string name, Node child)
        {
            if (ReferenceEquals(child.Owner, token))
            {
                return child;
            }
            var copy = child.CopyFor(token);
            parent.Children![name] = copy;
            return copy;
        }

        /// <summary>The number of nodes below <paramref name="start"/>; iterative, so a deep chain cannot overflow the stack.</summary>
        private static int CountBelow(Node start)
        {
            int count = 0;
            var stack = new Stack<Node>();
            stack.Push(start);
            while (stack.Count > 0)
            {
                var node = stack.Pop();
                if (node.Children is null)
                {
                    continue;
                }
                foreach (var child in node.Children.Values)
                {
                    count++;
                    stack.Push(child);
                }
            }
            return count;
        }

        private static IEnumerable<RootfsEntry> Walk(Node start)
        {
            var stack = new Stack<Node>();
            stack.Push(start);
            while (stack.Count > 0)
            {
                var node = stack.Pop();
                yield return node.Entry;
                if (node.Children is { Count: > 0 })
                {
                    var sorted = Sorted(node.Children);
                    for (int i = sorted.Count - 1; i >= 0; i--)
                    {
                        stack.Push(sorted[i]);
                    }
                }
            }
        }

        private static List<Node> Sorted(Dictionary<string, Node> children) => SortedPairs(children).ConvertAll(p => p.Value);

        private static List<KeyValuePair<string, Node>> SortedPairs(Dictionary<string, Node> children)
        {
            var list = children.ToList();
            list.Sort((a, b) => Utf8Order.Compare(a.Key, b.Key));
            return list;
        }
    }

    /// <summary>Orders names by their UTF-8 bytes, as a C program sorting the same names would.</summary>
    internal static class Utf8Order
    {
        /// <summary>Compares two strings by their UTF-8 encodings.</summary>
        public static int Compare(string a, string b) => Compare(a, b, separatorFirst: false);

        /// <summary>
        /// Compares by UTF-8 encodings; with <paramref name="separatorFirst"/>, '/' sorts below every
        /// other character, which orders whole paths component by component.
        /// </summary>
        internal static int Compare(string a, string b, bool separatorFirst)
        {
            // UTF-16 ordinal order equals UTF-8 byte order except around surrogates; compare code points.
            int i = 0, j = 0;
            while (i < a.Length && j < b.Length)
            {
                int ca = CodePoint(a, i, out int la);
                int cb = CodePoint(b, j, out int lb);
                if (ca != cb)
                {
                    if (separatorFirst && (ca == '/' || cb == '/'))
                    {
                        return ca == '/' ? -1 : 1;
                    }
                    return ca < cb ? -1 : 1;
                }
                i += la;
                j += lb;
            }
            return (a.Length - i).CompareTo(b.Length - j);
        }

        private static int CodePoint(string s, int index, out int length)
        {
            if (char.IsHighSurrogate(s[index]) && index + 1 < s.Length && char.IsLowSurrogate(s[index + 1]))
            {
                length = 2;
                return char.ConvertToUtf32(s[index], s[index + 1]);
            }
            length = 1;
            return s[index];
        }
    }
}
