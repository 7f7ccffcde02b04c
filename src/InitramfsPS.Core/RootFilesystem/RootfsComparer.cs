using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Threading;
using InitramfsPS.IO;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>How an entry differs between two rootfs.</summary>
    public enum RootfsChange
    {
        /// <summary>Only in the difference rootfs.</summary>
        Added,
        /// <summary>Only in the reference rootfs.</summary>
        Removed,
        /// <summary>In both, with different fields.</summary>
        Changed,
        /// <summary>In both, alike (listed with -IncludeEqual only).</summary>
        Equal,
    }

    /// <summary>The fields that differ between the two entries at one path.</summary>
    [Flags]
    public enum RootfsDifferenceFields
    {
        /// <summary>Nothing differs.</summary>
        None = 0,
        /// <summary>The entry type (file, directory, symlink, …).</summary>
        Type = 1,
        /// <summary>The permission bits (setuid, setgid and sticky included).</summary>
        Mode = 2,
        /// <summary>The owner uid or gid.</summary>
        Owner = 4,
        /// <summary>The size of a regular file.</summary>
        Size = 8,
        /// <summary>The bytes of a regular file of the same size (by sha256).</summary>
        Content = 16,
        /// <summary>A symlink's target.</summary>
        LinkTarget = 32,
        /// <summary>A device node's major or minor number.</summary>
        Device = 64,
    }

    /// <summary>One path that differs between two rootfs (or, with -IncludeEqual, does not).</summary>
    public sealed class RootfsDifference
    {
        /// <summary>The path in the rootfs.</summary>
        public required string Path { get; init; }

        /// <summary>Added, Removed, Changed or Equal.</summary>
        public RootfsChange Change { get; init; }

        /// <summary>The fields that differ (None for Added, Removed and Equal).</summary>
        public RootfsDifferenceFields Fields { get; init; }

        /// <summary>The entry of the reference rootfs (null when Added).</summary>
        public RootfsEntry? Reference { get; init; }

        /// <summary>The entry of the difference rootfs (null when Removed).</summary>
        public RootfsEntry? Difference { get; init; }

        /// <summary>
        /// What differs, for people: for a Changed path each differing field as
        /// <c>Field: reference -> difference</c> (sizes in exact bytes where the rounded sizes are
        /// the same); for the others the entry's mode, owner and size, link target or device.
        /// </summary>
        public string Detail => Change == RootfsChange.Changed ? DescribeFields() : Describe(Difference ?? Reference);

        private static string Describe(RootfsEntry? e)
        {
            if (e is null)
            {
                return string.Empty;
            }
            string what = e.Type switch
            {
                EntryType.File => " " + Units.Bytes(e.Size),
                EntryType.Symlink => " -> " + RootfsPath.Printable(e.LinkTarget),
                EntryType.CharDevice or EntryType.BlockDevice => Device(e),
                _ => string.Empty,
            };
            return $"{e.ModeString} {e.Owner}{what}";
        }

        private static string Device(RootfsEntry e) => string.Create(CultureInfo.InvariantCulture, $" {e.DevMajor},{e.DevMinor}");

        private string DescribeFields()
        {
            var a = Reference!;
            var b = Difference!;
            var parts = new List<string>();
            if (Fields.HasFlag(RootfsDifferenceFields.Type))
            {
                parts.Add($"Type: {a.Type} -> {b.Type}");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.Mode))
            {
                parts.Add($"Mode: {a.ModeString} -> {b.ModeString}");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.Owner))
            {
                parts.Add($"Owner: {a.Owner} -> {b.Owner}");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.Size))
            {
                var (x, y) = Units.BytesPair(a.Size, b.Size);
                parts.Add($"Size: {x} -> {y}");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.Content))
            {
                parts.Add("Content: same size, other bytes");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.LinkTarget))
            {
                parts.Add($"LinkTarget: {RootfsPath.Printable(a.LinkTarget)} -> {RootfsPath.Printable(b.LinkTarget)}");
            }
            if (Fields.HasFlag(RootfsDifferenceFields.Device))
            {
                parts.Add($"Device:{Device(a)} ->{Device(b)}");
            }
            return string.Join("; ", parts);
        }

        /// <summary>Like a line of a diff: <c>~ /etc/motd (Size, Content)</c>.</summary>
        public override string ToString()
        {
            char sign = Change switch { RootfsChange.Added => '+', RootfsChange.Removed => '-', RootfsChange.Changed => '~', _ => '=' };
            return Fields == RootfsDifferenceFields.None ? $"{sign} {RootfsPath.Printable(Path)}" : $"{sign} {RootfsPath.Printable(Path)} ({Fields})";
        }
    }

    /// <summary>
    /// Compares two rootfs entry by entry: paths only in one, and for paths in both the type, mode,
    /// owner, size, link target, device numbers and, for files of equal size, the sha256 of the
    /// bytes. Modification times and where the bytes are stored are not compared.
    /// </summary>
    internal static class RootfsComparer
    {
        /// <summary>The differences, in the rootfs order (parents first, names by bytes).</summary>
        public static IEnumerable<RootfsDifference> Compare(Rootfs reference, Rootfs difference, bool includeEqual, CancellationToken cancellationToken)
        {
            // Both trees walked side by side in archive order (linear in the entries, whatever the
            // depth); a subtree a copy shares with its original is skipped unless Equal is asked for.
            using var reader = new ContentReader();
            var buffer = new byte[1 << 16];
            var hashes = new Dictionary<Content, string>(ReferenceEqualityComparer.Instance);
            int count = 0;
            foreach (var (a, b) in Rootfs.Pair(reference, difference, skipShared: !includeEqual))
            {
                if ((++count & 255) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                if (a is null)
                {
                    yield return new RootfsDifference { Path = b!.Path, Change = RootfsChange.Added, Difference = b };
                    continue;
                }
                string path = a.Path;
                if (b is null)
                {
                    yield return new RootfsDifference { Path = path, Change = RootfsChange.Removed, Reference = a };
                    continue;
                }
                var fields = Fields(a, b, reader, buffer, hashes, cancellationToken);
                if (fields != RootfsDifferenceFields.None || includeEqual)
                {
                    yield return new RootfsDifference
                    {
                        Path = path,
                        Change = fields == RootfsDifferenceFields.None ? RootfsChange.Equal : RootfsChange.Changed,
                        Fields = fields,
                        Reference = a,
                        Difference = b,
                    };
                }
            }
        }

        /// <summary>Orders paths as <see cref="Rootfs.GetEntries"/> does: component by component, by UTF-8 bytes.</summary>
        public static int ComparePaths(string a, string b)
        {
            string[] x = RootfsPath.Split(a);
            string[] y = RootfsPath.Split(b);
            for (int i = 0; i < Math.Min(x.Length, y.Length); i++)
            {
                int c = Utf8Order.Compare(x[i], y[i]);
                if (c != 0)
                {
                    return c;
                }
            }
            return x.Length.CompareTo(y.Length);
        }

        private static RootfsDifferenceFields Fields(RootfsEntry a, RootfsEntry b, ContentReader reader, byte[] buffer,
            Dictionary<Content, string> hashes, CancellationToken cancellationToken)
        {
            var fields = RootfsDifferenceFields.None;
            if ((a.Mode & 0xFFF) != (b.Mode & 0xFFF))
            {
                fields |= RootfsDifferenceFields.Mode;
            }
            if (a.Uid != b.Uid || a.Gid != b.Gid)
            {
                fields |= RootfsDifferenceFields.Owner;
            }
            if (a.Type != b.Type)
            {
                return fields | RootfsDifferenceFields.Type;
            }
            switch (a.Type)
            {
                case EntryType.File:
                    if (a.Size != b.Size)
                    {
                        fields |= RootfsDifferenceFields.Size;
                    }
                    else if (a.Size > 0 && !SameBytes(a.Content, b.Content, reader, buffer, hashes, cancellationToken))
                    {
                        fields |= RootfsDifferenceFields.Content;
                    }
                    break;
                case EntryType.Symlink:
                    if (!string.Equals(a.LinkTarget, b.LinkTarget, StringComparison.Ordinal))
                    {
                        fields |= RootfsDifferenceFields.LinkTarget;
                    }
                    break;
                case EntryType.CharDevice:
                case EntryType.BlockDevice:
                    if (a.DevMajor != b.DevMajor || a.DevMinor != b.DevMinor)
                    {
                        fields |= RootfsDifferenceFields.Device;
                    }
                    break;
            }
            return fields;
        }

        private static bool SameBytes(Content? a, Content? b, ContentReader reader, byte[] buffer, Dictionary<Content, string> hashes, CancellationToken cancellationToken)
        {
            if (a is null || b is null)
            {
                return a is null && b is null;
            }
            if (ReferenceEquals(a, b)
                || (a is FileRangeContent x && b is FileRangeContent y && x.FilePath == y.FilePath && x.Offset == y.Offset && x.Length == y.Length && x.FileLength == y.FileLength))
            {
                return true;
            }
            return Hash(a, reader, buffer, hashes, cancellationToken) == Hash(b, reader, buffer, hashes, cancellationToken);
        }

        /// <summary>The sha256 (lower-case hex) of a content's bytes.</summary>
        public static string Sha256(Content content, CancellationToken cancellationToken)
        {
            using var reader = new ContentReader();
            return Hash(content, reader, new byte[1 << 16], new Dictionary<Content, string>(ReferenceEqualityComparer.Instance), cancellationToken);
        }

        private static string Hash(Content content, ContentReader reader, byte[] buffer, Dictionary<Content, string> hashes, CancellationToken cancellationToken)
        {
            if (hashes.TryGetValue(content, out string? known))
            {
                return known;
            }
            content.Validate();
            using var sink = new HashSink();
            reader.CopyTo(content, sink, buffer, cancellationToken);
            string hex = Convert.ToHexString(sink.Hash.GetHashAndReset()).ToLowerInvariant();
            hashes[content] = hex;
            return hex;
        }

        private sealed class HashSink : InitramfsPS.IO.WriteOnlyStream
        {
            public IncrementalHash Hash { get; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

            public override void Write(ReadOnlySpan<byte> buffer) => Hash.AppendData(buffer);

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    Hash.Dispose();
                }
                base.Dispose(disposing);
            }
        }
    }
}
