using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Buffers of one size handed between the threads of exports and layer unpackings: a pool of
    /// one's own, or the process's shared pool of a size (<see cref="Shared"/>), which keeps buffers
    /// from one export to the next.
    /// </summary>
    /// <remarks>
    /// <para>ArrayPool.Shared keeps only a few arrays of a size per core. A pipeline that hands 1 MiB
    /// chunks between threads keeps more than that in flight, so the surplus returned was dropped and
    /// allocated again: a 1 GB export allocated about 290 MB of chunks on the large-object heap,
    /// which only a full collection frees, and the process's peak memory grew with the archive. A
    /// pool keeps the buffers it is given back, up to its limit.</para>
    /// <para>Why shared, across exports: memory new to the process is dear on a virtual machine.
    /// Here the first touch of a page costs about 18 µs (a 64 MiB mapping touched once: 300 ms;
    /// touched again: 2 ms), so an export's 32 MiB of part buffers and its chunks, allocated anew
    /// each time, cost 0.1 s or more of page faults per export: 13k faults per warm export of the
    /// synthetic 1 GB image against 6k for the streamed chunks before issue 16. The shared pools
    /// keep up to <see cref="RetainedBytes"/> each, and let them go once unused for
    /// <see cref="IdleRelease"/>, so an idle session does not hold them.</para>
    /// </remarks>
    internal sealed class ChunkPool
    {
        /// <summary>Bytes a shared pool keeps at most: two exports' part buffers at the default zstd level, with room.</summary>
        public const long RetainedBytes = 96L << 20;

        /// <summary>How long a shared pool keeps its buffers unused.</summary>
        public static readonly TimeSpan IdleRelease = TimeSpan.FromSeconds(30);

        private static readonly ConcurrentDictionary<(int Size, bool Pinned), ChunkPool> SharedPools = new();

        /// <summary>
        /// Lets the shared pools' idle buffers go. It runs as long as the process does: a tick every
        /// 30 s costs nothing, where starting and stopping it took a global lock on every return.
        /// </summary>
        private static readonly Timer Sweeper = new(static _ => Sweep(IdleRelease), null, IdleRelease, IdleRelease);

        private readonly Stack<byte[]> free = new();
        private readonly bool pinned;
        private readonly int maxRetained;
        private long lastUse;
        private long allocated;

        /// <summary>
        /// A pool of buffers of <paramref name="size"/> bytes of one's own, which keeps every buffer
        /// given back until it is dropped; <paramref name="pinned"/> buffers never move (native code
        /// may keep pointers into them between calls).
        /// </summary>
        public ChunkPool(int size, bool pinned = false)
            : this(size, pinned, int.MaxValue)
        {
        }

        private ChunkPool(int size, bool pinned, int maxRetained)
        {
            Size = size;
            this.pinned = pinned;
            this.maxRetained = maxRetained;
        }

        /// <summary>The process's shared pool of buffers of <paramref name="size"/> bytes (pinned or not).</summary>
        public static ChunkPool Shared(int size, bool pinned = false) =>
            SharedPools.GetOrAdd((size, pinned), key => new ChunkPool(key.Size, key.Pinned, (int)Math.Max(1, RetainedBytes / key.Size)));

        /// <summary>Length of every buffer.</summary>
        public int Size { get; }

        /// <summary>Buffers this pool has made so far (a rent it could not serve from those kept).</summary>
        public long Allocated => Interlocked.Read(ref allocated);

        /// <summary>Buffers kept for reuse now.</summary>
        public int Retained
        {
            get
            {
                lock (free)
                {
                    return free.Count;
                }
            }
        }

        /// <summary>A buffer of <see cref="Size"/> bytes, reused or new (contents undefined).</summary>
        public byte[] Rent()
        {
            lock (free)
            {
                lastUse = Environment.TickCount64;
                if (free.Count > 0)
                {
                    return free.Pop();
                }
            }
            Interlocked.Increment(ref allocated);
            return GC.AllocateUninitializedArray<byte>(Size, pinned);
        }

        /// <summary>Gives a buffer of this pool back (one past the pool's limit is left to the GC).</summary>
        public void Return(byte[] buffer)
        {
            if (buffer.Length != Size)
            {
                throw new ArgumentException("The buffer is not one of this pool's.", nameof(buffer));
            }
            lock (free)
            {
                lastUse = Environment.TickCount64;
                if (free.Count < maxRetained)
                {
                    free.Push(buffer);
                }
            }
        }

        /// <summary>Lets every kept buffer go (a shared pool does so itself once idle).</summary>
        public void Clear()
        {
            lock (free)
            {
                free.Clear();
            }
        }

        /// <summary>Empties every shared pool unused for <paramref name="idle"/> (the sweeper's tick, or a test's).</summary>
        internal static void Sweep(TimeSpan idle)
        {
            foreach (var pool in SharedPools.Values)
            {
                lock (pool.free)
                {
                    if (Environment.TickCount64 - pool.lastUse >= (long)idle.TotalMilliseconds)
                    {
                        pool.free.Clear();
                    }
                }
            }
        }
    }
}
