using System;
using System.IO.Compression;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// One compressor of an export's parts: each part becomes one complete gzip member or zstd
    /// frame (or, uncompressed, its own bytes), a fixed function of the part's bytes and the level.
    /// A compressor thread of <see cref="OrderedPartWriter"/> holds one codec and runs it part after
    /// part.
    /// </summary>
    internal interface IPartCodec : IDisposable
    {
        /// <summary>
        /// Compresses <paramref name="part"/>, whose first input segment <paramref name="first"/>
        /// was taken already (the whole part, unless it streams), taking the rest as it comes and
        /// writing into <paramref name="output"/>.
        /// </summary>
        void Compress(Part part, Segment first, PartSink output);
    }

    /// <summary>Makes the codec of a compression.</summary>
    internal static class PartCodecs
    {
        /// <summary>A codec for <paramref name="compression"/> at <paramref name="level"/>, for one thread.</summary>
        public static IPartCodec Create(InitramfsCompression compression, int level) => compression switch
        {
            InitramfsCompression.Gzip => new GzipPartCodec(level),
            InitramfsCompression.Zstd => new ZstdPartCodec(level),
            _ => new PlainPartCodec(),
        };
    }

    /// <summary>No compression: the input chunks go on to the writer as they are (no copy).</summary>
    internal sealed class PlainPartCodec : IPartCodec
    {
        /// <inheritdoc/>
        public void Compress(Part part, Segment first, PartSink output)
        {
            var segment = first;
            do
            {
                output.Push(segment);
            }
            while (part.TryTake(out segment));
        }

        /// <inheritdoc/>
        public void Dispose()
        {
        }
    }

    /// <summary>Each part one gzip member, its header normalised (<see cref="GzipHeaderNormalizer"/>), from the part buffer in one write or streamed.</summary>
    internal sealed class GzipPartCodec : IPartCodec
    {
        private readonly CompressionLevel level;

        public GzipPartCodec(int level) => this.level = Compressors.GzipLevel(level);

        /// <inheritdoc/>
        public void Compress(Part part, Segment first, PartSink output)
        {
            using var compressor = new GZipStream(new GzipHeaderNormalizer(output), level, leaveOpen: false);
            var segment = first;
            do
            {
                compressor.Write(segment.Buffer, 0, segment.Count);
                if (!part.Streaming)
                {
                    // The whole part was one segment: its compression is its progress.
                    part.Consumed(segment.Count);
                }
                part.Release(segment);
            }
            while (part.TryTake(out segment));
        }

        /// <inheritdoc/>
        public void Dispose()
        {
        }
    }

    /// <summary>
    /// Each part one zstd frame: in one pass over the part buffer when the part is whole in it, or
    /// streamed from the buffer and the chunks that follow when the part outgrew it. One context
    /// per thread, reset between parts (no allocation per part).
    /// </summary>
    internal sealed class ZstdPartCodec : IPartCodec
    {
        private readonly ZstdFrameCompressor zstd;

        public ZstdPartCodec(int level) => zstd = new ZstdFrameCompressor(level);

        /// <inheritdoc/>
        public void Compress(Part part, Segment first, PartSink output)
        {
            // The first segment is the part buffer: given when the part ended, or when it overflowed.
            if (!part.Streaming)
            {
                zstd.CompressFrame(first.Buffer.AsSpan(0, first.Count), output, part.Consumed);
                part.Release(first);
                return;
            }
            zstd.BeginFrame();
            var segment = first;
            do
            {
                zstd.Continue(segment.Buffer.AsSpan(0, segment.Count), output);
                part.Release(segment);
            }
            while (part.TryTake(out segment));
            zstd.EndFrame(output);
        }

        /// <inheritdoc/>
        public void Dispose() => zstd.Dispose();
    }
}
