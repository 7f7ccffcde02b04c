using System;
using System.Collections.Generic;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>A tar entry of one layer, classified and with its path normalised, waiting to be applied.</summary>
    internal sealed class LayerEntry
    {
        /// <summary>Normalised path.</summary>
        public required string Path { get; init; }

        /// <summary>The entry type (meaningless for a hardlink).</summary>
        public EntryType Type { get; init; }

        /// <summary>For a hardlink: the normalised path of the entry it links to.</summary>
        public string? HardlinkTarget { get; init; }

        /// <summary>The tar header.</summary>
        public required TarHeader Header { get; init; }
    }

    /// <summary>One layer read and checked, not yet applied.</summary>
    internal sealed class ParsedLayer
    {
        /// <summary>Entries in tar order.</summary>
        public List<LayerEntry> Entries { get; } = new();

        /// <summary>Paths that <c>.wh.NAME</c> files delete from lower layers.</summary>
        public List<string> Whiteouts { get; } = new();

        /// <summary>Where each of <see cref="Whiteouts"/> is in the tar: the number of <see cref="Entries"/> before it.</summary>
        public List<int> WhiteoutPositions { get; } = new();

        /// <summary>Directories that <c>.wh..wh..opq</c> empties of lower-layer content.</summary>
        public List<string> OpaqueDirectories { get; } = new();

        /// <summary>Where each of <see cref="OpaqueDirectories"/> is in the tar: the number of <see cref="Entries"/> before it.</summary>
        public List<int> OpaquePositions { get; } = new();

        /// <summary>The file that holds the uncompressed tar (a layout blob or a cache blob).</summary>
        public string BackingPath { get; set; } = string.Empty;

        /// <summary>Length of that file, to notice later if it changed.</summary>
        public long BackingLength { get; set; }

        /// <summary>The digests of that file's blocks, recorded from the bytes that were verified; every read of a file's content checks them.</summary>
        public BlockDigests? Blocks { get; set; }

        /// <summary>The most records (entries, whiteouts, opaque directories) the layer may hold; <see cref="LayerApplier.Classify"/> stops there.</summary>
        public int MaxEntries { get; init; } = ExpandOptions.DefaultMaxEntries;

        /// <summary>Records held: entries, whiteouts and opaque directories.</summary>
        public int Records => Entries.Count + Whiteouts.Count + OpaqueDirectories.Count;
    }

    /// <summary>
    /// Applies layers to a rootfs per the OCI image spec's "Applying changesets": whiteouts and
    /// opaque whiteouts act on lower layers only, whatever their place in the tar, so they are
    /// applied first; then the entries in tar order. One exception to "whatever their place", as
    /// containerd applies a layer in stream order: a hardlink to a lower file that comes before the
    /// whiteout of that file keeps it (under the link's name); after the whiteout it has no target.
    /// Nothing is ever followed or written outside the rootfs: paths are normalised lexically, a
    /// '..' above the root is refused, and an entry whose parent is a symlink is refused rather
    /// than resolved.
    /// </summary>
    internal static class LayerApplier
    {
        private const string WhiteoutPrefix = ".wh.";
        private const string OpaqueMarker = ".wh..wh..opq";
        private const string MetaPrefix = ".wh..wh.";

        /// <summary>Classifies one tar header into <paramref name="layer"/>; <paramref name="layerName"/> names the layer in errors.</summary>
        public static void Classify(TarHeader header, ParsedLayer layer, string layerName)
        {
            if (layer.Records >= layer.MaxEntries)
            {
                // Counted while parsing: the rest of the layer is never read, let alone held.
                throw new InitramfsException("TooManyEntries", FailureKind.LimitExceeded,
                    $"{layerName}: the layer holds more than {layer.MaxEntries} entries; refusing to hold more in memory.", RootfsPath.Printable(header.Name));
            }
            if (!RootfsPath.TryNormalize(header.Name, out string path, out string? problem))
            {
                throw problem == "climbs"
                    ? new InitramfsException("LayerEntryOutsideRoot", FailureKind.Security,
                        $"{layerName}: the entry '{RootfsPath.Printable(header.Name)}' would be written outside the root; the layer is refused.", header.Name)
                    : new InitramfsException("LayerEntryNameInvalid", FailureKind.InvalidData,
                        $"{layerName}: an entry has an invalid name '{RootfsPath.Printable(header.Name)}' ({problem}).", header.Name);
            }
            string name = RootfsPath.Name(path);
            if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
            {
                string parent = RootfsPath.Parent(path);
                if (name == OpaqueMarker)
                {
                    if (TooLong(parent, out int parentBytes))
                    {
                        throw TooLongError(layerName, $"the opaque whiteout '{RootfsPath.Printable(header.Name)}' names the directory '{RootfsPath.Printable(parent)}', which is {parentBytes} bytes long", parent);
                    }
                    layer.OpaqueDirectories.Add(parent);
                    layer.OpaquePositions.Add(layer.Entries.Count);
                    return;
                }
                if (name.StartsWith(MetaPrefix, StringComparison.Ordinal))
                {
                    // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content, as containerd treats it.
                    return;
                }
                string target = name[WhiteoutPrefix.Length..];
                if (target.Length == 0 || target == "." || target == "..")
                {
                    throw new InitramfsException("LayerWhiteoutInvalid", FailureKind.Security,
                        $"{layerName}: the whiteout '{RootfsPath.Printable(header.Name)}' names no entry it could delete; the layer is refused.", header.Name);
                }
                string whitedOut = RootfsPath.Combine(parent, target);
                if (TooLong(whitedOut, out int whitedOutBytes))
                {
                    throw TooLongError(layerName, $"the whiteout '{RootfsPath.Printable(header.Name)}' names '{RootfsPath.Printable(whitedOut)}', which is {whitedOutBytes} bytes long", whitedOut);
                }
                layer.Whiteouts.Add(whitedOut);
                layer.WhiteoutPositions.Add(layer.Entries.Count);
                return;
            }
            if (TooLong(path, out int bytes))
            {
                throw TooLongError(layerName, $"the entry '{RootfsPath.Printable(path)}' is {bytes} bytes long", path);
            }

            EntryType type;
            string? hardlinkTarget = null;
            switch (header.TypeFlag)
            {
                case '0':
                case '\0':
                case '7':
                    type = EntryType.File;
                    break;
                case '1':
                    type = EntryType.File;
                    if (!RootfsPath.TryNormalize(header.LinkName, out string linkPath, out string? linkProblem))
                    {
                        throw new InitramfsException(linkProblem == "climbs" ? "LayerHardlinkOutsideRoot" : "LayerEntryNameInvalid",
                            linkProblem == "climbs" ? FailureKind.Security : FailureKind.InvalidData,
                            $"{layerName}: the hardlink '{RootfsPath.Printable(header.Name)}' points to '{RootfsPath.Printable(header.LinkName)}', which is {(linkProblem == "climbs" ? "outside the root" : "not a valid path")}; the layer is refused.", header.Name);
                    }
                    if (TooLong(linkPath, out int linkBytes))
                    {
                        throw TooLongError(layerName, $"the hardlink '{RootfsPath.Printable(path)}' points to '{RootfsPath.Printable(linkPath)}', which is {linkBytes} bytes long", linkPath);
                    }
                    hardlinkTarget = linkPath;
                    break;
                case '2':
                    type = EntryType.Symlink;
                    if (header.LinkName.Length == 0 || header.LinkName.Contains('\0', StringComparison.Ordinal))
                    {
                        throw new InitramfsException("LayerEntryNameInvalid", FailureKind.InvalidData,
                            $"{layerName}: the symlink '{RootfsPath.Printable(header.Name)}' has an empty or invalid target.", header.Name);
                    }
                    break;
                case '3':
                    type = EntryType.CharDevice;
                    break;
                case '4':
                    type = EntryType.BlockDevice;
                    break;
                case '5':
                case 'D':
                    type = EntryType.Directory;
                    break;
                case '6':
                    type = EntryType.Fifo;
                    break;
                case 'V':
                    return;
                default:
                    throw new InitramfsException("LayerEntryTypeUnsupported", FailureKind.NotImplemented,
                        $"{layerName}: the entry '{RootfsPath.Printable(header.Name)}' has the tar type '{RootfsPath.Printable(header.TypeFlag.ToString())}', which a layer cannot hold.", header.Name);
            }
            if (path == RootfsPath.Root && type != EntryType.Directory)
            {
                throw new InitramfsException("LayerEntryReplacesRoot", FailureKind.Security,
                    $"{layerName}: the entry '{RootfsPath.Printable(header.Name)}' would replace the root directory with a non-directory; the layer is refused.", header.Name);
            }
            layer.Entries.Add(new LayerEntry { Path = path, Type = type, HardlinkTarget = hardlinkTarget, Header = header });
        }

        /// <summary>
        /// Whether the kernel would drop <paramref name="path"/> (a name of PATH_MAX bytes or more with
        /// its NUL). Such a path is refused as soon as it is parsed: nothing longer reaches the rootfs,
        /// which bounds the cost of every later step (a path of 40,000 components once took time and
        /// memory quadratic in its length).
        /// </summary>
        private static bool TooLong(string path, out int bytes)
        {
            // The name in the archive is the path without its leading '/'.
            bytes = path.Length <= 1 ? 0 : Encoding.UTF8.GetByteCount(path.AsSpan(1));
            return !RootfsPath.FitsPathMax(bytes);
        }

        private static InitramfsException TooLongError(string layerName, string what, string path) =>
            new("LayerEntryNameTooLong", FailureKind.LimitExceeded,
                $"{layerName}: {what}; the kernel drops names of PATH_MAX ({RootfsPath.PathMax} bytes with the NUL) or more, so the layer is refused.",
                RootfsPath.Printable(path));

        /// <summary>
        /// Applies a parsed layer to <paramref name="rootfs"/>, which may hold at most
        /// <paramref name="maxEntries"/> entries (the directories the layer creates implicitly count too).
        /// </summary>
        public static void Apply(Rootfs rootfs, ParsedLayer layer, string layerName, int maxEntries = int.MaxValue)
        {
            // No content without the digests its reads are checked against.
            var blocks = layer.Blocks ?? throw new ArgumentException("The layer has no block digests.", nameof(layer));
            var removed = RemoveLower(rootfs, layer);
            for (int i = 0; i < layer.Entries.Count; i++)
            {
                var e = layer.Entries[i];
                var h = e.Header;
                RootfsEntry entry;
                if (e.HardlinkTarget is { } targetPath)
                {
                    if (targetPath == e.Path)
                    {
                        continue;
                    }
                    var target = rootfs.GetEntry(targetPath);
                    if (target is null && removed is not null && removed.TryGetValue(targetPath, out var gone))
                    {
                        if (gone.Position <= i)
                        {
                            throw new InitramfsException("LayerHardlinkTargetMissing", FailureKind.InvalidData,
                                $"{layerName}: the hardlink '{RootfsPath.Printable(e.Path)}' points to '{RootfsPath.Printable(targetPath)}', which a whiteout earlier in this layer removed (a link keeps a lower file only when it comes before the file's whiteout).", e.Path);
                        }
                        // The link comes first in the tar: as containerd, which applies the layer in
                        // that order, it is made before the whiteout removes its target, and the lower
                        // file lives on under the link's name (in the inode the target shared, if any).
                        var lower = gone.Entry;
                        if (lower.Hardlink is null)
                        {
                            lower = lower with { Hardlink = new HardlinkGroup() };
                            removed[targetPath] = (lower, gone.Position);
                        }
                        entry = lower with { Path = e.Path, Source = layerName };
                        Set(rootfs, entry, layerName, h.MTime);
                        CheckCount(rootfs, maxEntries, layerName, e.Path);
                        continue;
                    }
                    if (target is null)
                    {
                        throw new InitramfsException("LayerHardlinkTargetMissing", FailureKind.InvalidData,
                            $"{layerName}: the hardlink '{RootfsPath.Printable(e.Path)}' points to '{RootfsPath.Printable(targetPath)}', which does not exist in this or a lower layer.", e.Path);
                    }
                    if (target.Type == EntryType.Directory)
                    {
                        throw new InitramfsException("LayerHardlinkToDirectory", FailureKind.InvalidData,
                            $"{layerName}: the hardlink '{RootfsPath.Printable(e.Path)}' points to the directory '{RootfsPath.Printable(targetPath)}'.", e.Path);
                    }
                    var group = target.Hardlink;
                    if (group is null)
                    {
                        group = new HardlinkGroup();
                        Set(rootfs, target with { Hardlink = group }, layerName, h.MTime);
                    }
                    entry = target with { Path = e.Path, Hardlink = group, Source = layerName };
                }
                else
                {
                    entry = new RootfsEntry
                    {
                        Path = e.Path,
                        Type = e.Type,
                        Mode = h.Mode,
                        Uid = h.Uid,
                        Gid = h.Gid,
                        MTime = h.MTime,
                        Size = e.Type == EntryType.File ? h.Size : 0,
                        LinkTarget = e.Type == EntryType.Symlink ? h.LinkName : null,
                        DevMajor = e.Type is EntryType.CharDevice or EntryType.BlockDevice ? h.DevMajor : 0,
                        DevMinor = e.Type is EntryType.CharDevice or EntryType.BlockDevice ? h.DevMinor : 0,
                        Content = e.Type == EntryType.File ? new FileRangeContent(blocks, h.DataOffset, h.Size) : null,
                        Source = layerName,
                    };
                }
                Set(rootfs, entry, layerName, h.MTime);
                CheckCount(rootfs, maxEntries, layerName, e.Path);
            }
        }

        private static void CheckCount(Rootfs rootfs, int maxEntries, string layerName, string path)
        {
            if (rootfs.Count > maxEntries)
            {
                throw new InitramfsException("TooManyEntries", FailureKind.LimitExceeded,
                    $"{layerName}: with this layer the image has more than {maxEntries} entries (the directories it creates included); refusing to hold more in memory.", RootfsPath.Printable(path));
            }
        }

        /// <summary>
        /// Applies the layer's whiteouts and opaque whiteouts to the lower layers, in the order of the
        /// tar. When the layer also holds hardlinks, returns the lower entries those links point to
        /// that were removed, each with the position in the tar of the whiteout that removed it first
        /// (the number of entries before it); null otherwise.
        /// </summary>
        private static Dictionary<string, (RootfsEntry Entry, int Position)>? RemoveLower(Rootfs rootfs, ParsedLayer layer)
        {
            HashSet<string>? linkTargets = null;
            if (layer.Whiteouts.Count + layer.OpaqueDirectories.Count > 0)
            {
                foreach (var e in layer.Entries)
                {
                    if (e.HardlinkTarget is { } t)
                    {
                        (linkTargets ??= new HashSet<string>(StringComparer.Ordinal)).Add(t);
                    }
                }
            }
            var removed = linkTargets is null ? null : new Dictionary<string, (RootfsEntry Entry, int Position)>(StringComparer.Ordinal);
            void Remember(IEnumerable<RootfsEntry> entries, int position)
            {
                foreach (var gone in entries)
                {
                    if (linkTargets!.Contains(gone.Path))
                    {
                        removed!.TryAdd(gone.Path, (gone, position));
                    }
                }
            }
            // An index written before positions were kept has none: its whiteouts count as coming first.
            int PositionOf(List<int> positions, int k) => k < positions.Count ? positions[k] : 0;
            int w = 0, o = 0;
            while (w < layer.Whiteouts.Count || o < layer.OpaqueDirectories.Count)
            {
                bool opaqueNext = o < layer.OpaqueDirectories.Count
                    && (w >= layer.Whiteouts.Count || PositionOf(layer.OpaquePositions, o) <= PositionOf(layer.WhiteoutPositions, w));
                if (opaqueNext)
                {
                    string directory = layer.OpaqueDirectories[o];
                    int position = PositionOf(layer.OpaquePositions, o++);
                    if (rootfs.GetEntry(directory)?.Type == EntryType.Directory)
                    {
                        if (removed is not null)
                        {
                            Remember(rootfs.GetEntriesBelow(directory), position);
                        }
                        rootfs.ClearDirectory(directory);
                    }
                }
                else
                {
                    int position = PositionOf(layer.WhiteoutPositions, w);
                    var gone = rootfs.Remove(layer.Whiteouts[w++]);
                    if (removed is not null)
                    {
                        Remember(gone, position);
                    }
                }
            }
            return removed;
        }

        private static void Set(Rootfs rootfs, RootfsEntry entry, string layerName, long mtime)
        {
            var parentTemplate = new RootfsEntry { Path = "/", Type = EntryType.Directory, Mode = 0x1ED, MTime = mtime, Source = layerName };
            try
            {
                rootfs.Set(entry, parentTemplate);
            }
            catch (InitramfsException ex) when (ex.ErrorId is "ParentIsSymlink" or "ParentNotDirectory")
            {
                throw new InitramfsException(ex.ErrorId == "ParentIsSymlink" ? "LayerEntryThroughSymlink" : "LayerParentNotDirectory", ex.Kind,
                    $"{layerName}: {ex.Message}", entry.Path, ex);
            }
        }
    }
}
