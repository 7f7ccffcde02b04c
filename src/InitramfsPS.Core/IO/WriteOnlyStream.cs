using System;
using System.IO;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Base of the forward-only write streams of the export chain (hashing, header fixing, counting):
    /// subclasses write; reading and seeking are refused once, here.
    /// </summary>
    internal abstract class WriteOnlyStream : Stream
    {
        /// <inheritdoc/>
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        /// <inheritdoc/>
        public abstract override void Write(ReadOnlySpan<byte> buffer);

        /// <inheritdoc/>
        public override bool CanRead => false;
        /// <inheritdoc/>
        public override bool CanSeek => false;
        /// <inheritdoc/>
        public override bool CanWrite => true;
        /// <inheritdoc/>
        public override long Length => throw new NotSupportedException();
        /// <inheritdoc/>
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        /// <inheritdoc/>
        public override void Flush()
        {
        }
        /// <inheritdoc/>
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        /// <inheritdoc/>
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>File operations whose failure must not hide the error being reported.</summary>
    internal static class Files
    {
        /// <summary>
        /// Deletes temporary files that a killed process left behind. A writer holds its temporary
        /// file open exclusively (FileShare.None, an flock the kernel drops when the process dies),
        /// so a file that opens exclusively now belongs to no live writer and is deleted; one in use
        /// fails to open and is left alone.
        /// </summary>
        public static void SweepStalePartials(string directory, string pattern)
        {
            string[] candidates;
            try
            {
                candidates = Directory.GetFiles(directory, pattern);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return;
            }
            foreach (string candidate in candidates)
            {
                try
                {
                    using (new FileStream(candidate, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                    {
                    }
                    File.Delete(candidate);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // In use by a live writer, or not ours to delete: leave it.
                }
            }
        }

        /// <summary>Deletes a file, ignoring failure: used while cleaning up after another error.</summary>
        public static void TryDelete(string path)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
