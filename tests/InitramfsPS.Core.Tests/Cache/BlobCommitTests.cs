using System;
using System.IO;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Cache
{
    /// <summary>Committing blobs while other users of the cache start: each sweeps tmp/ of dead writers' files first.</summary>
    public sealed class BlobCommitTests : IDisposable
    {
        private readonly string root = Path.Combine(Path.GetTempPath(), "initramfsps-commit-" + Guid.NewGuid().ToString("N"));

        public void Dispose()
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }

        [Fact]
        public void A_commit_survives_the_first_sweep_of_every_other_store()
        {
            var ct = TestContext.Current.CancellationToken;
            var store = new BlobStore(root);
            using (store.CreateWriter())
            {
                // tmp/ exists, and this store has swept already.
            }
            using var done = new CancellationTokenSource();
            Exception? sweeperFailure = null;
            var sweeper = new Thread(() =>
            {
                try
                {
                    // Each new store sweeps tmp/ at its first writer, as a pull or an export starting in another process does.
                    while (!done.IsCancellationRequested)
                    {
                        new BlobStore(root).CreateWriter().Dispose();
                    }
                }
#pragma warning disable CA1031 // Reported by the test.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    sweeperFailure = ex;
                }
            });
            sweeper.Start();
            try
            {
                for (int i = 0; i < 300; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    using var writer = store.CreateWriter();
                    writer.Write(BitConverter.GetBytes(i));
                    Digest digest = writer.Digest;
                    // Before the fix, a sweep between the writer's close and its rename deleted the file: CacheWriteFailed.
                    writer.Commit(digest);
                    Assert.True(File.Exists(store.PathOf(digest)));
                }
            }
            finally
            {
                done.Cancel();
                sweeper.Join();
            }
            Assert.Null(sweeperFailure);
        }
    }

}
