using System;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Where the bytes of a blob to upload are: a range of a file (a part of an archive, a kernel)
    /// or bytes in memory (a config, a manifest). Each request body it makes reads its range again
    /// from the start every time it is sent, so the handlers may send a request again (after an
    /// auth challenge, or a retry) without the body having been used up.
    /// </summary>
    internal sealed class BlobSource
    {
        private readonly string? path;
        private readonly long offset;
        private readonly byte[]? bytes;

        private BlobSource(string? path, long offset, byte[]? bytes)
        {
            this.path = path;
            this.offset = offset;
            this.bytes = bytes;
        }

        /// <summary>The blob is the bytes of <paramref name="path"/> from <paramref name="offset"/>.</summary>
        public static BlobSource FromFile(string path, long offset) => new(path, offset, null);

        /// <summary>The blob is <paramref name="bytes"/>.</summary>
        public static BlobSource FromBytes(byte[] bytes) => new(null, 0, bytes);

        /// <summary>A request body of <paramref name="length"/> bytes of the blob from <paramref name="start"/>; <paramref name="sent"/> gets the bytes of it sent so far.</summary>
        public HttpContent Content(long start, long length, Action<long>? sent) => new RangeContent(this, start, length, sent);

        private sealed class RangeContent : HttpContent
        {
            private const int BufferSize = 1 << 16;
            private readonly BlobSource source;
            private readonly long start;
            private readonly long length;
            private readonly Action<long>? sent;

            public RangeContent(BlobSource source, long start, long length, Action<long>? sent)
            {
                this.source = source;
                this.start = start;
                this.length = length;
                this.sent = sent;
                Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            }

            protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
                SerializeToStreamAsync(stream, context, CancellationToken.None);

            protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
            {
                if (source.bytes is { } bytes)
                {
                    await stream.WriteAsync(bytes.AsMemory((int)start, (int)length), cancellationToken).ConfigureAwait(false);
                    sent?.Invoke(length);
                    return;
                }
                using var file = new FileStream(source.path!, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
                file.Position = source.offset + start;
                var buffer = new byte[BufferSize];
                long done = 0;
                while (done < length)
                {
                    int n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - done)), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new EndOfStreamException($"'{source.path}' ended before the blob's {length} bytes from {source.offset + start}; it changed while it was uploaded.");
                    }
                    await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    done += n;
                    sent?.Invoke(done);
                }
            }

            protected override bool TryComputeLength(out long length)
            {
                length = this.length;
                return true;
            }
        }
    }
}
