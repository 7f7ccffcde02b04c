using System;
using InitramfsPS.IO;
using Xunit;

namespace InitramfsPS.Core.Tests.IO
{
    // Alone: the shared pools are the process's, and a sweep empties all of them.
    [Collection(nameof(SharedPoolCollection))]
    public class ChunkPoolTests
    {
        [Fact]
        public void A_shared_pool_is_one_per_size_and_pinning_and_hands_back_what_it_was_given()
        {
            var pool = ChunkPool.Shared(12_345);
            Assert.Same(pool, ChunkPool.Shared(12_345));
            Assert.NotSame(pool, ChunkPool.Shared(12_345, pinned: true));

            var buffer = pool.Rent();
            Assert.Equal(12_345, buffer.Length);
            pool.Return(buffer);
            long made = pool.Allocated;
            Assert.Same(buffer, pool.Rent());
            Assert.Equal(made, pool.Allocated);
        }

        [Fact]
        public void A_shared_pool_keeps_at_most_its_share_of_memory()
        {
            // 33 MiB buffers: a share of 96 MiB is two. Uninitialized, so no page is touched.
            int size = 33 << 20;
            var pool = ChunkPool.Shared(size);
            pool.Clear();
            var rented = new[] { pool.Rent(), pool.Rent(), pool.Rent() };
            foreach (var buffer in rented)
            {
                pool.Return(buffer);
            }
            Assert.Equal((int)(ChunkPool.RetainedBytes / size), pool.Retained);
            Assert.Equal(2, pool.Retained);
            pool.Clear();
        }

        [Fact]
        public void A_pool_of_ones_own_keeps_every_buffer_given_back()
        {
            var pool = new ChunkPool(33 << 20);
            var rented = new[] { pool.Rent(), pool.Rent(), pool.Rent() };
            foreach (var buffer in rented)
            {
                pool.Return(buffer);
            }
            Assert.Equal(3, pool.Retained);
        }

        [Fact]
        public void The_sweep_lets_idle_buffers_go_and_keeps_those_in_use()
        {
            var pool = ChunkPool.Shared(23_456);
            pool.Return(pool.Rent());
            ChunkPool.Sweep(TimeSpan.FromMinutes(5));
            Assert.Equal(1, pool.Retained);
            ChunkPool.Sweep(TimeSpan.Zero);
            Assert.Equal(0, pool.Retained);
        }

        [Fact]
        public void A_buffer_of_another_size_is_refused()
        {
            var pool = ChunkPool.Shared(34_567);
            Assert.Throws<ArgumentException>(() => pool.Return(new byte[100]));
        }
    }

    /// <summary>Tests of the process's shared pools: run apart from the others, which rent from them.</summary>
    [CollectionDefinition(nameof(SharedPoolCollection), DisableParallelization = true)]
    public sealed class SharedPoolCollection
    {
    }
}
