using System;
using System.IO;
using System.IO.Compression;
using System.Threading;
using InitramfsPS.Compression;
using InitramfsPS.IO;
using Xunit;

namespace InitramfsPS.Core.Tests.Compression
{
    // With the tests of the shared pools, apart from the others: one test counts what they allocate.
    [Collection(nameof(InitramfsPS.Core.Tests.IO.SharedPoolCollection))]
    public sealed class PartPipelineTests : IDisposable
    {
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-pipeline-" + Guid.NewGuid().ToString("N"));

        public PartPipelineTests() => Directory.CreateDirectory(directory);

        public void Dispose() => Directory.Delete(directory, recursive: true);

        /// <summary>Writes <paramref name="input"/> in entries of 300 KiB and returns the file's bytes.</summary>
        private byte[] Export(byte[] input, InitramfsCompression compression, int workers)
        {
            string final = Path.Combine(directory, $"{compression}-{workers}.out");
            using var file = new AtomicFileWriter(final + ".partial", 1);
            using (var pipeline = new PartPipeline(file, compression, Compressors.DefaultLevel(compression), workers, CancellationToken.None))
            {
                long partBytes = 0;
                for (int at = 0; at < input.Length; at += 300 << 10)
                {
                    if (at == 0 || pipeline.Cuts.CutBefore(partBytes, 300 << 10, System.Text.Encoding.ASCII.GetBytes($"e{at}"), 300 << 10))
                    {
                        pipeline.BeginPart();
                        partBytes = 0;
                    }
                    int n = Math.Min(300 << 10, input.Length - at);
                    pipeline.Write(input.AsSpan(at, n));
                    partBytes += n;
                }
                pipeline.Complete();
                Assert.Equal(file.Length, pipeline.BytesWritten);
                if (compression != InitramfsCompression.None)
                {
                    Assert.True(pipeline.PartCount > 3);
                }
            }
            file.Commit(final, ExistingFile.Fail);
            return File.ReadAllBytes(final);
        }

        private static byte[] Input()
        {
            // Compressible but not trivially: 20 MiB, several parts at any level.
            var bytes = new byte[20 << 20];
            var random = new Random(15);
            for (int i = 0; i < bytes.Length; i += 64)
            {
                bytes[i] = (byte)random.Next(16);
            }
            return bytes;
        }

        [Fact]
        public void A_second_export_takes_the_first_ones_buffers_instead_of_new_memory()
        {
            // Memory new to the process costs a page fault per 4 KiB, dear on a virtual machine
            // (ChunkPool): the part buffers and chunks of one export serve the next.
            byte[] input = Input();
            long bufferSize = 2 * PartPipeline.DefaultPartSize(InitramfsCompression.Zstd, Compressors.DefaultLevel(InitramfsCompression.Zstd));
            var partBuffers = ChunkPool.Shared((int)bufferSize, pinned: true);
            var chunks = ChunkPool.Shared(PartPipeline.ChunkSize);
            // Other tests' exports ran before this one (not beside it: see the collection).
            long madeBefore = partBuffers.Allocated;
            Export(input, InitramfsCompression.Zstd, 2);
            File.Delete(Path.Combine(directory, "Zstd-2.out"));
            // The export gave its buffers back to the shared pools, not to pools of its own.
            Assert.True(partBuffers.Retained > 0);
            Assert.True(chunks.Retained > 0);
            Export(input, InitramfsCompression.Zstd, 2);
            // At most workers + 2 part buffers are out at once: two exports that each took new
            // ones would have made up to eight. (How many chunks an export holds at its peak
            // depends on how far the compressors ran ahead of the writer, so they are not counted.)
            Assert.InRange(partBuffers.Allocated - madeBefore, 0, 4);
        }

        [Theory]
        [InlineData(InitramfsCompression.None)]
        [InlineData(InitramfsCompression.Gzip)]
        [InlineData(InitramfsCompression.Zstd)]
        public void Parts_come_out_in_order_and_the_same_for_any_number_of_workers(InitramfsCompression compression)
        {
            byte[] input = Input();
            byte[] one = Export(input, compression, 1);
            byte[] four = Export(input, compression, 4);
            Assert.Equal(one, four);
            using var compressed = new MemoryStream(four);
            using Stream plain = compression switch
            {
                InitramfsCompression.Gzip => new GZipStream(compressed, CompressionMode.Decompress),
                InitramfsCompression.Zstd => new ZstdSharp.DecompressionStream(compressed),
                _ => compressed,
            };
            using var back = new MemoryStream();
            plain.CopyTo(back);
            Assert.Equal(input, back.ToArray());
        }

        [Fact]
        public void A_failed_export_leaves_no_file()
        {
            string final = Path.Combine(directory, "failed.out");
            Assert.Throws<InvalidOperationException>((Action)(() =>
            {
                using var file = new AtomicFileWriter(final + ".partial", 1);
                using var pipeline = new PartPipeline(file, InitramfsCompression.Zstd, 3, 2, CancellationToken.None);
                try
                {
                    pipeline.Write(Input());
                    throw new InvalidOperationException("the producer failed");
                }
                catch
                {
                    pipeline.Abort();
                    throw;
                }
            }));
            Assert.Empty(Directory.GetFileSystemEntries(directory));
        }
    }
}
