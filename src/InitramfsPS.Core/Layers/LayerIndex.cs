using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>
    /// The parsed form of a layer (its entries with their data offsets, whiteouts and opaque
    /// directories, and the BLAKE3 digest of each block of the tar), kept in the cache beside the
    /// uncompressed tar it describes, under the same diff_id. It is written only after the tar was
    /// verified against that diff_id, so a later expansion loads the index and reads none of the
    /// layer's bytes: a second export reads each layer's bytes once, for the file data, and checks
    /// each block it reads against the digest recorded here. Get-OciCache -Verify re-checks the tar
    /// whole.
    /// </summary>
    /// <remarks>
    /// Version 3 added the block digests, and the sha256 of the index's own bytes at its end. An
    /// index of another version, block size or hash, or whose bytes do not hash to that, is ignored, never
    /// trusted: the expansion then hashes the tar whole against the diff_id and writes the index
    /// again. That sha256 catches damage and edits of the index (a mode made setuid, an offset
    /// moved); like the block digests it lives in the cache, so it does not stand against someone
    /// who rewrites index and tar consistently (whoever can do that can also replace the module).
    /// </remarks>
    internal static class LayerIndex
    {
        // 2: each whiteout and opaque directory with its position in the tar.
        // 3: the digests of the tar's blocks, and the sha256 of the index at its end.
        private const string Magic = "InitramfsPS layer index 3";

        /// <summary>
        /// Loads the index, or null when it is missing, damaged, or does not match the tar it
        /// describes (missing, or another length). Every path is checked again to be normalised,
        /// so an edited index cannot place an entry outside the root. An index of more than
        /// <paramref name="maxEntries"/> records is not loaded (the tar is then parsed, and stops at the cap).
        /// </summary>
        public static ParsedLayer? TryRead(BlobStore cache, Digest diffId, int maxEntries = ExpandOptions.DefaultMaxEntries)
        {
            string path = cache.IndexPathOf(diffId);
            string backing = cache.PathOf(diffId);
            if (!File.Exists(path) || !File.Exists(backing))
            {
                return null;
            }
            try
            {
                // Read whole (its size grows with the entries, as the rootfs does) and checked
                // against the sha256 of its bytes at its end before anything in it is believed.
                byte[] bytes = File.ReadAllBytes(path);
                if (bytes.Length < 32 || !SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
                {
                    return null;
                }
                using var body = new MemoryStream(bytes, 0, bytes.Length - 32, writable: false);
                using var reader = new BinaryReader(body, Encoding.UTF8);
                if (reader.ReadString() != Magic)
                {
                    return null;
                }
                long length = reader.ReadInt64();
                if (length != new FileInfo(backing).Length)
                {
                    return null;
                }
                if (reader.ReadInt32() != BlockDigests.BlockSize || reader.ReadString() != BlockDigests.Algorithm)
                {
                    return null;
                }
                int digestBytes = BlockDigests.CountFor(length) * BlockDigests.DigestSize;
                byte[] digests = reader.ReadBytes(digestBytes);
                if (digests.Length != digestBytes)
                {
                    return null;
                }
                var parsed = new ParsedLayer
                {
                    BackingPath = backing,
                    BackingLength = length,
                    MaxEntries = maxEntries,
                    Blocks = new BlockDigests(backing, length, digests, BlockOwner.CachedLayer, diffId.ToString(), path, cache.MarkerOf(diffId)),
                };
                if (!ReadPaths(reader, parsed.Whiteouts, parsed.WhiteoutPositions, maxEntries)
                    || !ReadPaths(reader, parsed.OpaqueDirectories, parsed.OpaquePositions, maxEntries - parsed.Records))
                {
                    return null;
                }
                int count = reader.ReadInt32();
                if (count < 0 || count > maxEntries - parsed.Records)
                {
                    return null;
                }
                for (int i = 0; i < count; i++)
                {
                    string entryPath = reader.ReadString();
                    var type = (EntryType)reader.ReadByte();
                    string? hardlink = reader.ReadBoolean() ? reader.ReadString() : null;
                    var header = new TarHeader
                    {
                        Name = entryPath,
                        LinkName = reader.ReadString(),
                        TypeFlag = reader.ReadChar(),
                        Mode = reader.ReadInt32(),
                        Uid = reader.ReadInt64(),
                        Gid = reader.ReadInt64(),
                        MTime = reader.ReadInt64(),
                        Size = reader.ReadInt64(),
                        DevMajor = reader.ReadInt32(),
                        DevMinor = reader.ReadInt32(),
                        DataOffset = reader.ReadInt64(),
                    };
                    if (!IsNormalized(entryPath) || (hardlink is not null && !IsNormalized(hardlink))
                        || !Enum.IsDefined(type) || header.Size < 0 || header.DataOffset < 0 || header.DataOffset + header.Size > length)
                    {
                        return null;
                    }
                    parsed.Entries.Add(new LayerEntry { Path = entryPath, Type = type, HardlinkTarget = hardlink, Header = header });
                }
                if (parsed.WhiteoutPositions.Exists(p => p > count) || parsed.OpaquePositions.Exists(p => p > count))
                {
                    return null;
                }
                return body.Position == body.Length ? parsed : null;
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException or FormatException or ArgumentException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>Writes the index atomically; failing to write it only costs a slower next expansion.</summary>
        public static void Write(BlobStore cache, Digest diffId, ParsedLayer parsed)
        {
            if (parsed.Blocks is not { } blocks || blocks.FileLength != parsed.BackingLength)
            {
                throw new ArgumentException("An index is written only with the digests of the tar's blocks.", nameof(parsed));
            }
            string path = cache.IndexPathOf(diffId);
            string temp = path + "." + Guid.NewGuid().ToString("N") + ".partial";
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                using (var file = File.Create(temp))
                using (var hashing = new HashingWriteStream(file))
                using (var buffered = new BufferedStream(hashing, 1 << 16))
                using (var writer = new BinaryWriter(buffered, Encoding.UTF8))
                {
                    writer.Write(Magic);
                    writer.Write(parsed.BackingLength);
                    writer.Write(BlockDigests.BlockSize);
                    writer.Write(BlockDigests.Algorithm);
                    writer.Write(blocks.All);
                    WritePaths(writer, parsed.Whiteouts, parsed.WhiteoutPositions);
                    WritePaths(writer, parsed.OpaqueDirectories, parsed.OpaquePositions);
                    writer.Write(parsed.Entries.Count);
                    foreach (var e in parsed.Entries)
                    {
                        var h = e.Header;
                        writer.Write(e.Path);
                        writer.Write((byte)e.Type);
                        writer.Write(e.HardlinkTarget is not null);
                        if (e.HardlinkTarget is not null)
                        {
                            writer.Write(e.HardlinkTarget);
                        }
                        writer.Write(h.LinkName);
                        writer.Write(h.TypeFlag);
                        writer.Write(h.Mode);
                        writer.Write(h.Uid);
                        writer.Write(h.Gid);
                        writer.Write(h.MTime);
                        writer.Write(h.Size);
                        writer.Write(h.DevMajor);
                        writer.Write(h.DevMinor);
                        writer.Write(h.DataOffset);
                    }
                    writer.Flush();
                    buffered.Flush();
                    file.Write(hashing.Hash());
                }
                File.Move(temp, path, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Files.TryDelete(temp);
            }
        }

        /// <summary>Passes bytes on to a file, hashing them.</summary>
        private sealed class HashingWriteStream : WriteOnlyStream
        {
            private readonly Stream inner;
            private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

            public HashingWriteStream(Stream inner) => this.inner = inner;

            public override void Write(ReadOnlySpan<byte> buffer)
            {
                hash.AppendData(buffer);
                inner.Write(buffer);
            }

            public byte[] Hash() => hash.GetHashAndReset();

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    hash.Dispose();
                }
                base.Dispose(disposing);
            }
        }

        /// <summary>Normalised, and short enough for the kernel (an index of an older version may hold longer paths, which layers now refuse).</summary>
        private static bool IsNormalized(string path) =>
            RootfsPath.TryNormalize(path, out string normalized, out _) && normalized == path
            && RootfsPath.FitsPathMax(path.Length <= 1 ? 0 : Encoding.UTF8.GetByteCount(path.AsSpan(1)));

        private static void WritePaths(BinaryWriter writer, List<string> paths, List<int> positions)
        {
            writer.Write(paths.Count);
            for (int i = 0; i < paths.Count; i++)
            {
                writer.Write(paths[i]);
                writer.Write(i < positions.Count ? positions[i] : 0);
            }
        }

        private static bool ReadPaths(BinaryReader reader, List<string> into, List<int> positions, int max)
        {
            int count = reader.ReadInt32();
            if (count < 0 || count > max)
            {
                return false;
            }
            for (int i = 0; i < count; i++)
            {
                string p = reader.ReadString();
                int position = reader.ReadInt32();
                if (!IsNormalized(p) || position < 0)
                {
                    return false;
                }
                into.Add(p);
                positions.Add(position);
            }
            return true;
        }
    }
}
