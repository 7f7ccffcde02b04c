using System;
using System.Collections.Generic;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Buffers of one size reused by the threads of one export or one layer unpacking, and dropped
    /// with it.
    /// </summary>
    /// <remarks>
    /// ArrayPool.Shared keeps only a few arrays of a size per core. A pipeline that hands 1 MiB
    /// chunks between threads keeps more than that in flight, so the surplus returned was dropped and
    /// allocated again: a 1 GB export allocated about 290 MB of chunks on the large-object heap,
    /// which only a full collection frees, and the process's peak memory grew with the archive. This
    /// pool keeps every buffer it made, which is at most what the pipeline keeps in flight at once.
    /// </remarks>
    internal sealed class ChunkPool
    {
        private readonly Stack<byte[]> free = new();

        private readonly bool pinned;

        /// <summary>
        /// A pool of buffers of <paramref name="size"/> bytes; <paramref name="pinned"/> buffers never
        /// move (native code may keep pointers into them between calls).
        /// </summary>
        public ChunkPool(int size, bool pinned = false)
        {
            Size = size;
            this.pinned = pinned;
        }

        /// <summary>Length of every buffer.</summary>
        public int Size { get; }

        /// <summary>A buffer of <see cref="Size"/> bytes, reused or new (contents undefined).</summary>
        public byte[] Rent()
        {
            lock (free)
            {
                if (free.Count > 0)
                {
                    return free.Pop();
                }
            }
            return GC.AllocateUninitializedArray<byte>(Size, pinned);
        }

        /// <summary>Gives a buffer of this pool back.</summary>
        public void Return(byte[] buffer)
        {
            if (buffer.Length != Size)
            {
                throw new ArgumentException("The buffer is not one of this pool's.", nameof(buffer));
            }
            lock (free)
            {
                free.Push(buffer);
            }
        }
    }
}
