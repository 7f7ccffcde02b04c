using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Compression;
using InitramfsPS.Cpio;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.Import
{
    /// <summary>Limits and callbacks of <see cref="InitramfsImporter.Import"/>.</summary>
    internal sealed class ImportOptions
    {
        /// <summary>The most bytes all compressed parts of one archive may expand to together.</summary>
        public long MaxUncompressedSize { get; init; } = DefaultMaxUncompressedSize;

        /// <summary>16 GiB, as for a layer.</summary>
        public const long DefaultMaxUncompressedSize = 16L << 30;

        /// <summary>The most entries an archive may hold (metadata is kept in memory).</summary>
        public int MaxEntries { get; init; } = 2_000_000;

        /// <summary>Called now and then with (archive bytes read, archive size).</summary>
        public Action<long, long>? Progress { get; init; }
    }

    /// <summary>One physical part of an initramfs: a run of plain cpio data or one compressed member/frame.</summary>
    public sealed class ArchivePart
    {
        /// <summary>Offset of the part in the file.</summary>
        public long Offset { get; init; }

        /// <summary>Bytes of the file the part spans.</summary>
        public long Length { get; init; }

        /// <summary><c>none</c>, <c>gzip</c> or <c>zstd</c>.</summary>
        public required string Compression { get; init; }

        /// <summary>Bytes of cpio data the part holds.</summary>
        public long UncompressedLength { get; init; }

        /// <summary>cpio records in the part (trailers included).</summary>
        public int Records { get; init; }

        /// <summary>Where the decompressed bytes are cached (null for a plain part).</summary>
        public string? CachePath { get; init; }
    }

    /// <summary>What <see cref="InitramfsImporter.Import"/> read.</summary>
    public sealed class ImportResult
    {
        /// <summary>The rootfs the kernel would unpack from the archive.</summary>
        public required Rootfs Rootfs { get; init; }

        /// <summary>Entries the kernel would drop or treat specially, for people (written as warnings).</summary>
        public required IReadOnlyList<string> Notes { get; init; }

        /// <summary>The parts of the file, in order.</summary>
        public required IReadOnlyList<ArchivePart> Parts { get; init; }
    }

    /// <summary>
    /// Imports an initramfs into a Rootfs the way the kernel's <c>unpack_to_rootfs</c> (init/initramfs.c)
    /// unpacks it; the records themselves come from <see cref="CpioRecordReader"/>, and what is here is
    /// what they mean for a rootfs. An initramfs is a sequence of parts, each plain cpio newc (070701, or 070702 with data checksums) at a
    /// 4-byte aligned offset, or a gzip member or zstd frame holding cpio data; NUL bytes may pad
    /// between parts and between entries. A part need not end in TRAILER!!!; a TRAILER!!! resets the
    /// hardlink table. Later entries replace earlier ones (a directory over a directory keeps its
    /// children); an entry whose parent is missing, a non-regular entry with data, a name or symlink
    /// target longer than PATH_MAX, or a non-directory over a non-empty directory is dropped, as the
    /// kernel drops it, with a note. File contents are never held in memory: a plain part's files point
    /// into the archive itself, a compressed part is decompressed into the imports area of the cache
    /// (under the sha256 of its bytes; the area has a budget of its own) and its files point into that.
    /// </summary>
    internal static class InitramfsImporter
    {
        private const int MaxNotes = 200;
        private static readonly UTF8Encoding StrictUtf8 = new(false, true);

        /// <summary>Reads the archive at <paramref name="path"/>.</summary>
        public static ImportResult Import(string path, BlobStore cache, ImportOptions options, CancellationToken cancellationToken)
        {
            string fullPath = Path.GetFullPath(path);
            if (Directory.Exists(fullPath))
            {
                throw new InitramfsException("ArchiveNotFile", FailureKind.InvalidArgument, $"'{fullPath}' is a directory, not an archive.", fullPath);
            }
            SafeFileHandle handle;
            try
            {
                // Not a plain open: a FIFO would block it forever.
                handle = RegularFile.OpenRead(fullPath);
            }
            catch (NotRegularFileException ex)
            {
                throw new InitramfsException("ArchiveNotFile", FailureKind.InvalidArgument, $"'{fullPath}' is {ex.Kind}, not an archive; it is not read.", fullPath, ex);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The archive '{fullPath}' does not exist.", fullPath, ex);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new InitramfsException("ArchiveReadFailed", FailureKind.InvalidData, $"Cannot read '{fullPath}': {ex.Message}", fullPath, ex);
            }
            using (handle)
            {
                try
                {
                    using var importer = new Importer(fullPath, handle, cache, options, cancellationToken);
                    return importer.Run();
                }
                catch (IOException ex)
                {
                    throw new InitramfsException("ArchiveReadFailed", FailureKind.InvalidData, $"Cannot read '{fullPath}': {ex.Message}", fullPath, ex);
                }
            }
        }

        /// <summary>
        /// A file read by position: the archive, or a decompressed part in the cache. Every read is
        /// checked against the digests of the file's blocks, recorded before the parse began (the
        /// archive's by a first pass over it, a part's as it was decompressed): names, modes and
        /// link targets come from the same bytes as the file contents an export reads later.
        /// </summary>
        private sealed class Source : ICpioSource
        {
            private readonly ContentReader reader;

            public Source(BlockDigests blocks, ContentReader reader, string description)
            {
                Blocks = blocks;
                this.reader = reader;
                Description = description;
            }

            public BlockDigests Blocks { get; }
            public string Path => Blocks.FilePath;
            public long Length => Blocks.FileLength;
            public string Description { get; }

            public int ReadAt(long position, Span<byte> buffer)
            {
                int total = 0;
                while (total < buffer.Length)
                {
                    int n = reader.Read(Blocks, position + total, buffer[total..]);
                    if (n <= 0)
                    {
                        break;
                    }
                    total += n;
                }
                return total;
            }

            public string Where(long offset) => CpioRecordReader.Where(offset, Description);
        }

        /// <summary>
        /// The names of one inode seen since the last TRAILER!!!, and the inode's state so far. Every
        /// name carries the inode's data and metadata, as the kernel's names share them; the earlier
        /// names are brought up to date once, when the group closes (at TRAILER!!! or the end), not at
        /// every new name, which made a group of n names cost n² (20,000 names: 80 s).
        /// </summary>
        private sealed class LinkGroup
        {
            public required HardlinkGroup Group { get; init; }
            public required string FirstPath { get; init; }
            public List<string> Paths { get; } = new();
            public Content? Content { get; set; }
            public long Size { get; set; }
            public int Mode { get; set; }
            public long Uid { get; set; }
            public long Gid { get; set; }
        }

        private readonly record struct LinkKey(uint Ino, uint DevMajor, uint DevMinor, uint Type);

        private sealed class Importer : IDisposable
        {
            private readonly string archivePath;
            private readonly SafeFileHandle handle;
            private readonly ContentReader reader = new();
            private readonly Source archive;
            private readonly BlobStore cache;
            private readonly ImportOptions options;
            private readonly CancellationToken cancellationToken;
            private readonly Rootfs rootfs = new();
            private readonly List<string> notes = new();
            private readonly List<ArchivePart> parts = new();
            private readonly Dictionary<LinkKey, LinkGroup> links = new();
            private readonly byte[] scratch = new byte[1 << 16];
            private int droppedNotes;
            private int records;
            private long uncompressedTotal;

            public Importer(string archivePath, SafeFileHandle handle, BlobStore cache, ImportOptions options, CancellationToken cancellationToken)
            {
                this.archivePath = archivePath;
                this.handle = handle;
                // The archive is the user's and no digest pins it: what is checked later is that its
                // bytes are still those this import read. Its blocks are hashed before the parse.
                long length = RandomAccess.GetLength(handle);
                var blocks = new BlockDigests(archivePath, length, BlockHasher.OfFile(handle, length, cancellationToken), BlockOwner.Archive, archivePath);
                archive = new Source(blocks, reader, $"'{archivePath}'");
                this.cache = cache;
                this.options = options;
                this.cancellationToken = cancellationToken;
            }

            public void Dispose() => reader.Dispose();

            public ImportResult Run()
            {
                long pos = 0;
                bool afterPlain = false;
                var magic = new byte[6];
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    options.Progress?.Invoke(pos, archive.Length);
                    pos = SkipNuls(archive, pos);
                    if (pos >= archive.Length)
                    {
                        break;
                    }
                    if (afterPlain && (pos & 3) != 0)
                    {
                        // do_reset: after a plain part, what follows its padding must be aligned.
                        throw Invalid(archive, pos, "broken padding: data after a plain cpio part starts at an offset that is not a multiple of 4");
                    }
                    int got = archive.ReadAt(pos, magic);
                    if (magic[0] == (byte)'0' && (pos & 3) == 0)
                    {
                        int before = records;
                        long start = pos;
                        pos = ReadEntries(archive, pos, plain: true, "none");
                        parts.Add(new ArchivePart { Offset = start, Length = pos - start, Compression = "none", UncompressedLength = pos - start, Records = records - before });
                        afterPlain = true;
                        continue;
                    }
                    afterPlain = false;
                    string? compression = PartDecompressor.Identify(magic.AsSpan(0, got));
                    if (compression is null)
                    {
                        throw Invalid(archive, pos, "invalid magic: neither cpio newc (070701), gzip nor zstd");
                    }
                    if (compression is not ("gzip" or "zstd"))
                    {
                        throw new InitramfsException("ArchiveCompressionUnsupported", FailureKind.NotImplemented,
                            $"The part at {archive.Where(pos)} is {compression}-compressed; Import-Initramfs reads gzip and zstd parts only.", archivePath);
                    }
                    pos = ReadCompressedPart(pos, compression);
                }
                CloseLinkGroups();
                options.Progress?.Invoke(archive.Length, archive.Length);
                if (records == 0)
                {
                    Note($"'{archivePath}' holds no cpio entries.");
                }
                if (droppedNotes > 0)
                {
                    notes.Add(string.Create(CultureInfo.InvariantCulture, $"… and {droppedNotes} more notes like these."));
                }
                rootfs.Changes.Add($"imported from {archivePath}");
                rootfs.Origin = archivePath;
                return new ImportResult { Rootfs = rootfs, Notes = notes, Parts = parts };
            }

            private long ReadCompressedPart(long pos, string compression)
            {
                string where = string.Create(CultureInfo.InvariantCulture, $"The {compression} part at offset {pos} of '{archivePath}'");
                // Into the imports area, whose own budget keeps copies of archives from pushing pulled images out.
                var area = cache.Imports;
                // The cache's writer hashes the part as it writes it: the blob is stored under the digest it computed.
                using var writer = area.CreateWriter();
                using var blockHasher = new BlockHasher();
                using var sink = new HashingSink(writer.Stream, blockHasher);
                long consumed;
                try
                {
                    consumed = PartDecompressor.Decompress(handle, archive.Length, pos, compression, sink,
                        options.MaxUncompressedSize - uncompressedTotal, where, cancellationToken);
                }
                catch (IOException ex) when (sink.Failed)
                {
                    throw new InitramfsException("CacheWriteFailed", FailureKind.WriteFailed, $"Cannot write to the cache '{cache.Root}': {ex.Message}", cache.Root, ex);
                }
                uncompressedTotal += sink.Written;
                var digest = writer.Digest;
                string blobPath = writer.Commit(digest);
                ImportOrigins.Record(area.MarkerOf(digest), archivePath);
                // The blob may be an older copy another run committed: it is read through the digests
                // of the bytes just decompressed, so a damaged copy is found (and removed) here.
                var blocks = new BlockDigests(blobPath, sink.Written, blockHasher.Finish(), BlockOwner.CacheBlob, digest.ToString(), null, area.MarkerOf(digest));
                if (new FileInfo(blobPath).Length != sink.Written)
                {
                    throw blocks.Mismatch(null);
                }
                var source = new Source(blocks, reader, $"the {compression} part at offset {pos} of '{archivePath}' (decompressed)");
                int before = records;
                long end = ReadEntries(source, 0, plain: false, compression);
                if (end < source.Length)
                {
                    throw Invalid(source, end, "junk within the compressed part (not a cpio header)");
                }
                parts.Add(new ArchivePart { Offset = pos, Length = consumed, Compression = compression, UncompressedLength = source.Length, Records = records - before, CachePath = blobPath });
                return pos + consumed;
            }

            /// <summary>
            /// Applies the records of one run from <paramref name="pos"/> (where the caller found a '0'
            /// at an aligned offset); returns the offset of the first byte after the run (or the end).
            /// </summary>
            private long ReadEntries(Source source, long pos, bool plain, string compression)
            {
                var recordReader = new CpioRecordReader(source, pos, source.Description, archivePath, cancellationToken);
                while (true)
                {
                    if ((records & 255) == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        if (plain)
                        {
                            options.Progress?.Invoke(recordReader.Position, archive.Length);
                        }
                    }
                    if (!recordReader.TryReadRecord(out var record))
                    {
                        return recordReader.Position;
                    }
                    records++;
                    Apply(recordReader, source, record, compression);
                }
            }

            private long SkipNuls(Source source, long pos) => CpioRecordReader.SkipZeros(source, pos, scratch, cancellationToken);

            /// <summary>Does with one record what the kernel's do_name and its successors do.</summary>
            private void Apply(CpioRecordReader recordReader, Source source, in CpioRecord record, string compression)
            {
                var h = record.Header;
                long pos = record.Offset;
                if (record.Name is not { } nameBytes)
                {
                    Note(string.Create(CultureInfo.InvariantCulture,
                        $"The entry at {source.Where(pos)} was dropped: its name is {record.NameSize} bytes (the kernel takes 1 to PATH_MAX)."));
                    return;
                }
                string rawName = DecodeName(nameBytes, source, pos);
                if (record.IsTrailer)
                {
                    CloseLinkGroups();
                    return;
                }
                if (rootfs.Count >= options.MaxEntries)
                {
                    throw new InitramfsException("ArchiveTooManyEntries", FailureKind.LimitExceeded,
                        $"'{archivePath}' has more than {options.MaxEntries} entries; refusing to hold more in memory.", archivePath);
                }
                string display = RootfsPath.Printable(rawName);
                uint mode = h.Mode, fileSize = h.FileSize;
                var type = NewcCodec.TypeOf(mode);
                if (type is null)
                {
                    Note($"'{display}' was dropped: its mode {Convert.ToString(mode, 8)} has no file type the kernel creates.");
                    return;
                }
                if (type != EntryType.File && type != EntryType.Symlink && fileSize != 0)
                {
                    Note($"'{display}' was dropped: a {type} entry with {fileSize} bytes of data (the kernel skips it).");
                    return;
                }
                if (type == EntryType.Symlink && fileSize > RootfsPath.PathMax)
                {
                    Note($"'{display}' was dropped: its symlink target is {fileSize} bytes, more than PATH_MAX.");
                    return;
                }
                if (rawName.Length == 0)
                {
                    Note($"The entry at {source.Where(pos)} was dropped: its name is empty.");
                    return;
                }
                string? linkTarget = null;
                if (type == EntryType.Symlink)
                {
                    var target = recordReader.ReadData(record);
                    int end = Array.IndexOf(target, (byte)0);
                    linkTarget = DecodeName(end >= 0 ? target.AsSpan(0, end) : target, source, pos);
                }
                bool device = type is EntryType.CharDevice or EntryType.BlockDevice;
                var entry = new RootfsEntry
                {
                    Path = RootfsPath.Confine(rawName),
                    Type = type.Value,
                    Mode = (int)(mode & 0xFFF),
                    Uid = h.Uid,
                    Gid = h.Gid,
                    MTime = h.MTime,
                    Size = type == EntryType.File ? fileSize : 0,
                    LinkTarget = linkTarget,
                    DevMajor = device ? (int)h.RDevMajor : 0,
                    DevMinor = device ? (int)h.RDevMinor : 0,
                    Content = type == EntryType.File ? new FileRangeContent(source.Blocks, record.DataOffset, fileSize) : null,
                    Source = compression == "none" ? "cpio:" + archivePath : $"cpio:{archivePath} ({compression})",
                };
                if (type == EntryType.File && h.NLink >= 2)
                {
                    PutLinked(entry, new LinkKey(h.Ino, h.DevMajor, h.DevMinor, mode & NewcCodec.TypeMask), fileSize, display);
                }
                else
                {
                    Put(entry, display);
                }
            }

            /// <summary>Puts an entry where the kernel would create it; false (with a note) where the kernel would fail.</summary>
            private bool Put(RootfsEntry entry, string display)
            {
                if (entry.Path == RootfsPath.Root)
                {
                    if (entry.Type != EntryType.Directory)
                    {
                        Note($"'{display}' was dropped: it names the root, which stays a directory.");
                        return false;
                    }
                    rootfs.Set(entry, null);
                    return true;
                }
                string parentPath = RootfsPath.Parent(entry.Path);
                var parent = rootfs.GetEntry(parentPath);
                if (parent is null || parent.Type != EntryType.Directory)
                {
                    if (ParentChainHasSymlink(parentPath))
                    {
                        Note($"'{display}' was dropped: its path goes through a symlink, which the rootfs does not follow.");
                    }
                    else
                    {
                        Note(parent is null
                            ? $"'{display}' was dropped: its parent directory {RootfsPath.Printable(parentPath)} does not exist (yet) in the archive."
                            : $"'{display}' was dropped: its parent {RootfsPath.Printable(parentPath)} is not a directory.");
                    }
                    return false;
                }
                var existing = rootfs.GetEntry(entry.Path);
                if (existing is { Type: EntryType.Directory } && entry.Type != EntryType.Directory && HasChildren(entry.Path))
                {
                    Note($"'{display}' was dropped: it would replace the directory {RootfsPath.Printable(entry.Path)}, which is not empty (the kernel cannot remove it).");
                    return false;
                }
                rootfs.Set(entry, null);
                return true;
            }

            private void PutLinked(RootfsEntry entry, LinkKey key, long fileSize, string display)
            {
                if (!links.TryGetValue(key, out var group))
                {
                    var fresh = new LinkGroup
                    {
                        Group = new HardlinkGroup(), FirstPath = entry.Path, Content = entry.Content, Size = entry.Size,
                        Mode = entry.Mode, Uid = entry.Uid, Gid = entry.Gid,
                    };
                    if (Put(entry with { Hardlink = fresh.Group }, display))
                    {
                        fresh.Paths.Add(entry.Path);
                    }
                    // The kernel records the first name even when creating it failed; later names then fail to link.
                    links[key] = fresh;
                    return;
                }
                if (rootfs.GetEntry(group.FirstPath)?.Hardlink != group.Group)
                {
                    Note($"'{display}' was dropped: it is a hardlink to {RootfsPath.Printable(group.FirstPath)}, which is no longer there.");
                    return;
                }
                if (fileSize > 0)
                {
                    // The data of a group may come on any member (GNU cpio puts it on the last); a member
                    // with data rewrites the shared inode, as the kernel's open-and-write does.
                    group.Content = entry.Content;
                    group.Size = fileSize;
                }
                var linked = entry with { Hardlink = group.Group, Content = group.Content, Size = group.Size };
                if (!Put(linked, display))
                {
                    return;
                }
                group.Paths.Add(entry.Path);
                // chown/chmod and the data apply to the one inode every name shares: the earlier names
                // take them when the group closes.
                group.Mode = linked.Mode;
                group.Uid = linked.Uid;
                group.Gid = linked.Gid;
            }

            /// <summary>
            /// Gives every name of the open hardlink groups the inode's final data and metadata, then
            /// forgets the groups (as TRAILER!!! resets the kernel's link table). A name replaced by a
            /// later entry is left alone. Linear in the number of names.
            /// </summary>
            private void CloseLinkGroups()
            {
                foreach (var group in links.Values)
                {
                    foreach (string member in group.Paths)
                    {
                        var current = rootfs.GetEntry(member);
                        if (current is not null && current.Hardlink == group.Group
                            && (current.Mode != group.Mode || current.Uid != group.Uid || current.Gid != group.Gid
                                || current.Size != group.Size || !ReferenceEquals(current.Content, group.Content)))
                        {
                            rootfs.Set(current with { Mode = group.Mode, Uid = group.Uid, Gid = group.Gid, Size = group.Size, Content = group.Content }, null);
                        }
                    }
                }
                links.Clear();
            }

            private bool HasChildren(string path)
            {
                using var children = rootfs.GetChildren(path).GetEnumerator();
                return children.MoveNext();
            }

            private bool ParentChainHasSymlink(string path) => rootfs.FirstNonDirectoryOnPath(path)?.Type == EntryType.Symlink;

            private string DecodeName(ReadOnlySpan<byte> bytes, Source source, long pos)
            {
                try
                {
                    return StrictUtf8.GetString(bytes);
                }
                catch (DecoderFallbackException)
                {
                    Note($"A name at {source.Where(pos)} is not valid UTF-8; its invalid bytes became U+FFFD.");
                    return Encoding.UTF8.GetString(bytes);
                }
            }

            private void Note(string message)
            {
                if (notes.Count < MaxNotes)
                {
                    notes.Add(message);
                }
                else
                {
                    droppedNotes++;
                }
            }

            private InitramfsException Invalid(Source source, long pos, string what) =>
                new("ArchiveInvalid", FailureKind.InvalidData, $"At {source.Where(pos)}: {what}.", archivePath);
        }

        /// <summary>Writes into the cache (whose writer hashes the whole) while hashing by block and counting; remembers whether the write side failed.</summary>
        private sealed class HashingSink : InitramfsPS.IO.WriteOnlyStream
        {
            private readonly Stream inner;
            private readonly BlockHasher blocks;

            public HashingSink(Stream inner, BlockHasher blocks)
            {
                this.inner = inner;
                this.blocks = blocks;
            }

            public long Written { get; private set; }

            public bool Failed { get; private set; }

            public override void Write(ReadOnlySpan<byte> buffer)
            {
                try
                {
                    inner.Write(buffer);
                }
                catch (IOException)
                {
                    Failed = true;
                    throw;
                }
                blocks.Append(buffer);
                Written += buffer.Length;
            }
        }
    }
}
