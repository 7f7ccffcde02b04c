using System;
using System.Buffers;
using ZstdSharp.Unsafe;

namespace InitramfsPS.Compression
{
    /// <summary>
    /// One zstd compression context that writes frame after frame (each with the content checksum
    /// the kernel verifies) into an <see cref="IBufferWriter{T}"/>.
    /// </summary>
    /// <remarks>
    /// ZstdSharp's <c>Compressor.WrapStream</c> copies every input chunk into zstd's own window
    /// buffer, which makes zstd match across a wrapped window (its slower "extDict" block
    /// compressors): measured here on Debian minbase, 17% slower than one pass over contiguous
    /// input. Its <c>Wrap</c> needs an output buffer of the whole compress bound. The raw API of the
    /// same port lets a whole part be compressed in one pass from where it lies (stableInBuffer, with
    /// its size pledged) while the output still leaves in small chunks. Both the contiguous and the
    /// streamed form are fixed functions of the input bytes, level and zstd version.
    /// </remarks>
    internal sealed unsafe class ZstdFrameCompressor : IDisposable
    {
        private ZSTD_CCtx_s* context;

        /// <summary>A context for <paramref name="level"/> (1–19).</summary>
        public ZstdFrameCompressor(int level)
        {
            context = Methods.ZSTD_createCCtx();
            if (context is null)
            {
                throw new InvalidOperationException("zstd could not allocate a compression context.");
            }
            Check(Methods.ZSTD_CCtx_setParameter(context, ZSTD_cParameter.ZSTD_c_compressionLevel, level));
            Check(Methods.ZSTD_CCtx_setParameter(context, ZSTD_cParameter.ZSTD_c_checksumFlag, 1));
        }

        /// <summary>log2 of the window zstd uses at <paramref name="level"/> for inputs of unknown, large size.</summary>
        public static int WindowLog(int level) => (int)Methods.ZSTD_getCParams(level, 0, 0).windowLog;

        /// <summary>
        /// Compresses <paramref name="input"/> as one frame whose header records its size. The input
        /// must not move while this runs: a pinned array (zstd keeps pointers into it between calls).
        /// <paramref name="consumed"/> hears how many more input bytes zstd took after each output
        /// chunk, so that a long part at a high level shows progress.
        /// </summary>
        public void CompressFrame(ReadOnlySpan<byte> input, IBufferWriter<byte> output, Action<long>? consumed = null)
        {
            Reset(stableInput: true);
            Check(Methods.ZSTD_CCtx_setPledgedSrcSize(context, (ulong)input.Length));
            fixed (byte* source = input)
            {
                var buffer = new ZSTD_inBuffer_s { src = source, size = (nuint)input.Length, pos = 0 };
                Drive(&buffer, ZSTD_EndDirective.ZSTD_e_end, output, consumed);
            }
        }

        /// <summary>Begins a frame of unknown size, fed by <see cref="Continue"/> and ended by <see cref="EndFrame"/>.</summary>
        public void BeginFrame() => Reset(stableInput: false);

        /// <summary>Feeds bytes of the frame begun by <see cref="BeginFrame"/>; zstd copies what it keeps.</summary>
        public void Continue(ReadOnlySpan<byte> input, IBufferWriter<byte> output)
        {
            fixed (byte* source = input)
            {
                var buffer = new ZSTD_inBuffer_s { src = source, size = (nuint)input.Length, pos = 0 };
                Drive(&buffer, ZSTD_EndDirective.ZSTD_e_continue, output);
            }
        }

        /// <summary>Ends the frame begun by <see cref="BeginFrame"/>.</summary>
        public void EndFrame(IBufferWriter<byte> output)
        {
            var buffer = new ZSTD_inBuffer_s { src = null, size = 0, pos = 0 };
            Drive(&buffer, ZSTD_EndDirective.ZSTD_e_end, output);
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            if (context is not null)
            {
                Methods.ZSTD_freeCCtx(context);
                context = null;
            }
        }

        private void Reset(bool stableInput)
        {
            // A session reset keeps the level and checksum and drops any half-made frame.
            Check(Methods.ZSTD_CCtx_reset(context, ZSTD_ResetDirective.ZSTD_reset_session_only));
            Check(Methods.ZSTD_CCtx_setParameter(context, ZSTD_cParameter.ZSTD_c_experimentalParam9, stableInput ? 1 : 0));
        }

        /// <summary>Calls zstd until it took all of the input (continue) or wrote the whole frame (end).</summary>
        private void Drive(ZSTD_inBuffer_s* input, ZSTD_EndDirective directive, IBufferWriter<byte> output, Action<long>? consumed = null)
        {
            nuint reported = input->pos;
            while (true)
            {
                var room = output.GetSpan(1);
                nuint left;
                nuint written;
                fixed (byte* destination = room)
                {
                    var buffer = new ZSTD_outBuffer_s { dst = destination, size = (nuint)room.Length, pos = 0 };
                    left = Check(Methods.ZSTD_compressStream2(context, &buffer, input, directive));
                    written = buffer.pos;
                }
                output.Advance((int)written);
                if (consumed is not null && input->pos != reported)
                {
                    consumed((long)(input->pos - reported));
                    reported = input->pos;
                }
                bool done = directive == ZSTD_EndDirective.ZSTD_e_end ? left == 0 : input->pos == input->size;
                if (done)
                {
                    return;
                }
            }
        }

        private static nuint Check(nuint code)
        {
            if (Methods.ZSTD_isError(code))
            {
                throw new InvalidOperationException($"zstd failed: {Methods.ZSTD_getErrorName(code)}.");
            }
            return code;
        }
    }
}
