using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>
    /// Where the bytes of a regular file are. A rootfs never copies file bytes: it refers to a
    /// range of a layer tar (in a layout or the cache), a host file, or a few inline bytes.
    /// </summary>
    public abstract class Content
    {
        /// <summary>Number of bytes.</summary>
        public abstract long Length { get; }

        /// <summary>Where the bytes are, for people.</summary>
        public abstract override string ToString();

        /// <summary>Throws when the backing store is gone or changed since the reference was made.</summary>
        public abstract void Validate();

        /// <summary>
        /// The file and length <see cref="Validate"/> checks, when that is all it checks: contents
        /// with the same key validate alike, so an export of 100k entries of one layer checks the
        /// layer once. Null: validate this content itself.
        /// </summary>
        internal virtual (string Path, long Length)? ValidationKey => null;

        /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="position"/>.</summary>
        internal abstract int Read(ContentReader reader, long position, Span<byte> buffer);

        /// <summary>
        /// Feeds <paramref name="hasher"/> what determines this content's bytes, without reading
        /// them where that is known (the digests of a layer's blocks), else the bytes themselves:
        /// two contents that feed the same are the same bytes. A part of an export whose entries
        /// feed the same is the same part, copied from the part cache unread (issue 16).
        /// </summary>
        internal abstract void AppendIdentity(Blake3.Hasher hasher, ContentReader reader);

        /// <summary>Feeds a tag, the length and every byte of <paramref name="content"/>, read in 1 MiB pieces.</summary>
        private protected static void AppendBytes(Content content, Blake3.Hasher hasher, ContentReader reader, byte tag)
        {
            Span<byte> numbers = stackalloc byte[9];
            numbers[0] = tag;
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[1..], content.Length);
            hasher.Update(numbers);
            byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                long position = 0;
                while (position < content.Length)
                {
                    int got = content.Read(reader, position, buffer.AsSpan(0, (int)Math.Min(buffer.Length, content.Length - position)));
                    if (got <= 0)
                    {
                        throw content.Changed();
                    }
                    hasher.Update(buffer.AsSpan(0, got));
                    position += got;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        /// <summary>The error <see cref="Validate"/> throws when the backing store changed.</summary>
        internal virtual InitramfsException Changed() =>
            new("ContentChanged", FailureKind.InvalidData, $"'{this}' changed since the rootfs was made.", ToString());
    }

    /// <summary>
    /// A byte range of a file we own or were pointed at: a layer tar in a layout or in the cache, or
    /// an imported archive or its decompressed part. Every read checks the blocks it touches against
    /// the digests recorded when the file was verified (<see cref="BlockDigests"/>).
    /// </summary>
    internal sealed class FileRangeContent : Content
    {
        /// <summary>Creates a reference to <paramref name="length"/> bytes at <paramref name="offset"/> of the file <paramref name="blocks"/> describes.</summary>
        public FileRangeContent(BlockDigests blocks, long offset, long length)
        {
            if (offset < 0 || length < 0 || offset > blocks.FileLength - length)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{length} is not inside the {blocks.FileLength} bytes of '{blocks.FilePath}'.");
            }
            Blocks = blocks;
            Offset = offset;
            Length = length;
        }

        /// <summary>The backing file and the digests of its blocks.</summary>
        public BlockDigests Blocks { get; }

        /// <summary>The backing file.</summary>
        public string FilePath => Blocks.FilePath;

        /// <summary>Offset of the first byte.</summary>
        public long Offset { get; }

        /// <inheritdoc/>
        public override long Length { get; }

        /// <summary>Length of the backing file when the reference was made; a different length means it changed.</summary>
        public long FileLength => Blocks.FileLength;

        /// <inheritdoc/>
        public override string ToString() => $"{FilePath}@{Offset}+{Length}";

        internal override (string Path, long Length)? ValidationKey => (FilePath, FileLength);

        /// <inheritdoc/>
        public override void Validate()
        {
            var info = new FileInfo(FilePath);
            if (!info.Exists || info.Length != FileLength)
            {
                throw Changed();
            }
        }

        internal override InitramfsException Changed() =>
            new("LayerContentMissing", FailureKind.NotFound,
                $"'{FilePath}' (a layer or an imported archive) is missing or changed since the rootfs was made; expand the image or import the archive again.", FilePath);

        internal override int Read(ContentReader reader, long position, Span<byte> buffer)
        {
            if (position >= Length)
            {
                return 0;
            }
            return reader.Read(Blocks, Offset + position, buffer[..(int)Math.Min(buffer.Length, Length - position)], Changed);
        }

        /// <summary>
        /// The digests of the blocks the range covers, with where in them it starts and its
        /// length: every read of the range is checked against these digests, so they fix its bytes.
        /// </summary>
        internal override void AppendIdentity(Blake3.Hasher hasher, ContentReader reader)
        {
            Span<byte> numbers = stackalloc byte[17];
            numbers[0] = (byte)'R';
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[1..], Offset % BlockDigests.BlockSize);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[9..], Length);
            hasher.Update(numbers);
            if (Length > 0)
            {
                long first = Offset / BlockDigests.BlockSize;
                long last = (Offset + Length - 1) / BlockDigests.BlockSize;
                hasher.Update(Blocks.All.Slice(checked((int)(first * BlockDigests.DigestSize)), checked((int)((last - first + 1) * BlockDigests.DigestSize))));
            }
        }
    }

    /// <summary>A file of the host, added with Add-InitramfsFile; read at export time.</summary>
    internal sealed class HostFileContent : Content
    {
        /// <summary>Refers to a host file of the given length.</summary>
        public HostFileContent(string filePath, long length)
        {
            FilePath = filePath;
            Length = length;
        }

        /// <summary>The host file.</summary>
        public string FilePath { get; }

        /// <inheritdoc/>
        public override long Length { get; }

        /// <inheritdoc/>
        public override string ToString() => FilePath;

        internal override (string Path, long Length)? ValidationKey => (FilePath, Length);

        /// <inheritdoc/>
        public override void Validate()
        {
            var info = new FileInfo(FilePath);
            if (!info.Exists || info.Length != Length)
            {
                throw Changed();
            }
        }

        internal override InitramfsException Changed() =>
            new("HostFileChanged", FailureKind.InvalidData,
                $"The host file '{FilePath}' was removed or changed since it was added; add it again.", FilePath);

        internal override int Read(ContentReader reader, long position, Span<byte> buffer)
            => RandomAccess.Read(reader.Handle(this, FilePath), buffer, position);

        /// <summary>The bytes themselves: a host file can change in place with nothing to tell it by.</summary>
        internal override void AppendIdentity(Blake3.Hasher hasher, ContentReader reader) => AppendBytes(this, hasher, reader, (byte)'H');
    }

    /// <summary>Bytes held in memory: generated files such as an /init script.</summary>
    internal sealed class InlineContent : Content
    {
        private readonly byte[] data;

        /// <summary>Holds a copy of <paramref name="data"/>.</summary>
        public InlineContent(ReadOnlySpan<byte> data) => this.data = data.ToArray();

        /// <inheritdoc/>
        public override long Length => data.Length;

        /// <inheritdoc/>
        public override string ToString() => $"inline {data.Length} bytes";

        /// <inheritdoc/>
        public override void Validate()
        {
        }

        internal override int Read(ContentReader reader, long position, Span<byte> buffer)
        {
            if (position >= data.Length)
            {
                return 0;
            }
            int n = (int)Math.Min(buffer.Length, data.Length - position);
            data.AsSpan((int)position, n).CopyTo(buffer);
            return n;
        }

        internal override void AppendIdentity(Blake3.Hasher hasher, ContentReader reader)
        {
            Span<byte> numbers = stackalloc byte[9];
            numbers[0] = (byte)'I';
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[1..], data.Length);
            hasher.Update(numbers);
            hasher.Update(data);
        }
    }

    /// <summary>
    /// Reads content, keeping one handle per backing file open so an export of thousands of
    /// entries from one layer opens the layer once. Reads are positional, so no seek state is shared.
    /// One reader is one read session, used by one thread at a time.
    /// </summary>
    /// <remarks>
    /// Bytes of a <see cref="FileRangeContent"/> are read in whole blocks and hashed before any of
    /// them is handed out: a read of a few bytes hashes the block that holds them. The last blocks
    /// read stay in memory (<see cref="KeptBlocks"/> of them), so the small files of a layer, which
    /// share blocks, cost one hash per block and not one per file; aligned whole blocks are read
    /// straight into the caller's buffer and hashed there, with no copy. The bytes handed out are
    /// always the bytes that were hashed: nothing is read again from the file after its check.
    /// </remarks>
    internal sealed class ContentReader : IDisposable
    {
        /// <summary>Blocks kept per session: 1 MiB, more than the few an export in tar order needs.</summary>
        internal const int KeptBlocks = 64;

        /// <summary>Whole blocks read into the caller's buffer at once (256 KiB: hashed while still in the CPU's cache).</summary>
        private const int DirectBlocks = 16;

        /// <summary>
        /// Off only for the Bench's same-run comparison of exports with and without the checks
        /// (set by reflection; nothing in the module or its cmdlets turns it off): reads then go
        /// straight to the file, as before the checks existed.
        /// </summary>
        private static bool verify = true;

        private static long bytesHashed;

        private readonly Dictionary<string, SafeFileHandle> handles = new(StringComparer.Ordinal);
        private readonly Kept[] kept = new Kept[KeptBlocks];
        private long uses;

        /// <summary>Bytes hashed by the checks in this process so far (for the Bench and the tests).</summary>
        public static long BytesHashed => Interlocked.Read(ref bytesHashed);

        internal SafeFileHandle Handle(Content content, string path) => Handle(path, content.Changed);

        private SafeFileHandle Handle(string path, Func<InitramfsException> changed)
        {
            if (!handles.TryGetValue(path, out var handle))
            {
                try
                {
                    // Not a plain open: a file replaced by a FIFO since it was added would block it forever.
                    handle = RegularFile.OpenRead(path);
                }
                catch (Exception ex) when (ex is NotRegularFileException or FileNotFoundException or DirectoryNotFoundException)
                {
                    throw changed();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // A host file removed, or made unreadable, since it was added (or a cached layer since it was expanded).
                    throw new InitramfsException("HostFileUnreadable", FailureKind.ReadFailed, $"Cannot read '{path}': {ex.Message}", path, ex);
                }
                handles[path] = handle;
            }
            return handle;
        }

        /// <summary>
        /// Reads up to <paramref name="destination"/>.Length bytes at <paramref name="position"/> of the
        /// file <paramref name="file"/> describes, every one of them checked; fewer at a block's end.
        /// <paramref name="changed"/> is the error for a file that is no longer a regular file
        /// (null: that of a mismatch).
        /// </summary>
        internal int Read(BlockDigests file, long position, Span<byte> destination, Func<InitramfsException>? changed = null)
        {
            var handle = Handle(file.FilePath, changed ?? (() => Forget(file, null)));
            if (destination.IsEmpty || position >= file.FileLength)
            {
                return 0;
            }
            if (!verify)
            {
                return RandomAccess.Read(handle, destination, position);
            }
            long block = position / BlockDigests.BlockSize;
            int inBlock = (int)(position - (block * BlockDigests.BlockSize));
            int slot = Find(file, block);
            if (slot < 0)
            {
                if (inBlock == 0 && destination.Length >= file.LengthOf(block))
                {
                    return ReadWholeBlocks(handle, file, block, destination);
                }
                slot = Load(handle, file, block);
            }
            ref var k = ref kept[slot];
            k.LastUse = ++uses;
            int n = Math.Min(destination.Length, k.Length - inBlock);
            k.Buffer.AsSpan(inBlock, n).CopyTo(destination);
            return n;
        }

        /// <summary>Reads whole blocks from <paramref name="first"/> into <paramref name="destination"/> and checks each.</summary>
        private int ReadWholeBlocks(SafeFileHandle handle, BlockDigests file, long first, Span<byte> destination)
        {
            long start = first * BlockDigests.BlockSize;
            long available = file.FileLength - start;
            int want = (int)Math.Min(Math.Min(destination.Length, available), (long)DirectBlocks * BlockDigests.BlockSize);
            // Whole blocks only: a block cut short here would be read again, whole, by the next call.
            if (want < available)
            {
                want -= want % BlockDigests.BlockSize;
            }
            var target = destination[..want];
            ReadFully(handle, file, start, target, first);
            for (int done = 0; done < want; done += BlockDigests.BlockSize)
            {
                long block = first + (done / BlockDigests.BlockSize);
                var bytes = target.Slice(done, Math.Min(BlockDigests.BlockSize, want - done));
                Interlocked.Add(ref bytesHashed, bytes.Length);
                if (!file.Matches(block, bytes))
                {
                    throw Forget(file, block);
                }
            }
            return want;
        }

        private int Find(BlockDigests file, long block)
        {
            for (int i = 0; i < kept.Length; i++)
            {
                if (ReferenceEquals(kept[i].File, file) && kept[i].Block == block)
                {
                    return i;
                }
            }
            return -1;
        }

        /// <summary>Reads and checks a block into the least recently used slot.</summary>
        private int Load(SafeFileHandle handle, BlockDigests file, long block)
        {
            int slot = 0;
            for (int i = 1; i < kept.Length; i++)
            {
                if (kept[i].LastUse < kept[slot].LastUse)
                {
                    slot = i;
                }
            }
            ref var k = ref kept[slot];
            k.File = null;
            k.Buffer ??= new byte[BlockDigests.BlockSize];
            int length = file.LengthOf(block);
            var bytes = k.Buffer.AsSpan(0, length);
            ReadFully(handle, file, block * BlockDigests.BlockSize, bytes, block);
            Interlocked.Add(ref bytesHashed, length);
            if (!file.Matches(block, bytes))
            {
                throw Forget(file, block);
            }
            k.File = file;
            k.Block = block;
            k.Length = length;
            return slot;
        }

        private void ReadFully(SafeFileHandle handle, BlockDigests file, long position, Span<byte> into, long block)
        {
            int filled = 0;
            while (filled < into.Length)
            {
                int n = RandomAccess.Read(handle, into[filled..], position + filled);
                if (n <= 0)
                {
                    // Shorter than when it was verified: it changed.
                    throw Forget(file, block + (filled / BlockDigests.BlockSize));
                }
                filled += n;
            }
        }

        /// <summary>The mismatch error; the file's blocks kept so far are dropped with it.</summary>
        private InitramfsException Forget(BlockDigests file, long? block)
        {
            for (int i = 0; i < kept.Length; i++)
            {
                if (ReferenceEquals(kept[i].File, file))
                {
                    kept[i].File = null;
                }
            }
            return file.Mismatch(block);
        }

        private struct Kept
        {
            public BlockDigests? File;
            public long Block;
            public int Length;
            public long LastUse;
            public byte[] Buffer;
        }

        /// <summary>Copies exactly <see cref="Content.Length"/> bytes of <paramref name="content"/> to <paramref name="destination"/>.</summary>
        public void CopyTo(Content content, Stream destination, byte[] buffer, CancellationToken cancellationToken)
        {
            long position = 0;
            while (position < content.Length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int want = (int)Math.Min(buffer.Length, content.Length - position);
                int got = content.Read(this, position, buffer.AsSpan(0, want));
                if (got <= 0)
                {
                    throw new InitramfsException("ContentTruncated", FailureKind.InvalidData,
                        $"'{content}' ended after {position} of {content.Length} bytes; it changed while being read.", content.ToString());
                }
                destination.Write(buffer, 0, got);
                position += got;
            }
        }

        /// <summary>Reads the first bytes of <paramref name="content"/> (for shebang and ELF checks).</summary>
        public byte[] ReadPrefix(Content content, int count)
        {
            var buffer = new byte[(int)Math.Min(count, content.Length)];
            int filled = 0;
            while (filled < buffer.Length)
            {
                int got = content.Read(this, filled, buffer.AsSpan(filled));
                if (got <= 0)
                {
                    break;
                }
                filled += got;
            }
            return filled == buffer.Length ? buffer : buffer[..filled];
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            foreach (var handle in handles.Values)
            {
                handle.Dispose();
            }
            handles.Clear();
            Array.Clear(kept);
        }
    }
}
