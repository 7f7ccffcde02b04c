using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS
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

        /// <summary>The error <see cref="Validate"/> throws when the backing store changed.</summary>
        internal virtual InitramfsException Changed() =>
            new("ContentChanged", FailureKind.InvalidData, $"'{this}' changed since the rootfs was made.", ToString());
    }

    /// <summary>A byte range of a file we own or were pointed at: a layer tar in a layout or in the cache.</summary>
    public sealed class FileRangeContent : Content
    {
        /// <summary>Creates a reference to <paramref name="length"/> bytes at <paramref name="offset"/> of a file of <paramref name="fileLength"/> bytes.</summary>
        public FileRangeContent(string filePath, long offset, long length, long fileLength)
        {
            FilePath = filePath;
            Offset = offset;
            Length = length;
            FileLength = fileLength;
        }

        /// <summary>The backing file.</summary>
        public string FilePath { get; }

        /// <summary>Offset of the first byte.</summary>
        public long Offset { get; }

        /// <inheritdoc/>
        public override long Length { get; }

        /// <summary>Length of the backing file when the reference was made; a different length means it changed.</summary>
        public long FileLength { get; }

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
            => RandomAccess.Read(reader.Handle(this, FilePath), buffer, Offset + position);
    }

    /// <summary>A file of the host, added with Add-InitramfsFile; read at export time.</summary>
    public sealed class HostFileContent : Content
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
    }

    /// <summary>Bytes held in memory: generated files such as an /init script.</summary>
    public sealed class InlineContent : Content
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
    }

    /// <summary>
    /// Reads content, keeping one handle per backing file open so an export of thousands of
    /// entries from one layer opens the layer once. Reads are positional, so no seek state is shared.
    /// </summary>
    public sealed class ContentReader : IDisposable
    {
        private readonly Dictionary<string, SafeFileHandle> handles = new(StringComparer.Ordinal);

        internal SafeFileHandle Handle(Content content, string path)
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
                    throw content.Changed();
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
        }
    }
}
