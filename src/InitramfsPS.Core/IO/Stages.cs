using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.IO
{
    /// <summary>
    /// The engine's one way of running work on several threads: stages that hand items to each
    /// other through <see cref="BoundedQueue{T}"/>s. The first failure of any stage is kept,
    /// cancels <see cref="Token"/> (which every wait of every stage observes, so the others unwind
    /// at once) and is the one <see cref="Wait"/> rethrows; a stage unwound by that cancellation
    /// ends quietly. The caller's token is linked in, so Ctrl+C stops every stage the same way.
    /// </summary>
    /// <remarks>
    /// Stages are dedicated threads, not thread-pool work: they block on queues, on the disk and
    /// in compressors for the length of an export or a layer, which would starve the pool.
    /// </remarks>
    internal sealed class Stages : IDisposable
    {
        private readonly CancellationToken cancellationToken;
        private readonly CancellationTokenSource stop;
        private readonly List<Thread> threads = new();
        private Exception? failure;
        private bool joined;

        /// <summary>A group whose stages stop when <paramref name="cancellationToken"/> is cancelled.</summary>
        public Stages(CancellationToken cancellationToken)
        {
            this.cancellationToken = cancellationToken;
            stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }

        /// <summary>Cancelled at the first failure, by <see cref="Cancel"/>, or with the caller's token: every wait of a stage takes it.</summary>
        public CancellationToken Token => stop.Token;

        /// <summary>The first failure of a stage, if any.</summary>
        public Exception? Failure => Volatile.Read(ref failure);

        /// <summary>Runs <paramref name="body"/> on a thread of its own named <paramref name="name"/>.</summary>
        public void Start(string name, Action body)
        {
            var thread = new Thread(() => Run(body)) { IsBackground = true, Name = name };
            threads.Add(thread);
            thread.Start();
        }

        /// <summary>Runs <paramref name="body"/> on the calling thread as one of the stages: its failure is kept, not thrown.</summary>
        public void Run(Action body)
        {
            try
            {
                body();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Unwound because another stage failed or the work was stopped: that one says why.
            }
#pragma warning disable CA1031 // kept, and rethrown on the thread that waits for the stages
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fail(ex);
            }
        }

        /// <summary>Records <paramref name="exception"/> unless a failure came first, and stops every stage.</summary>
        public void Fail(Exception exception)
        {
            if (Interlocked.CompareExchange(ref failure, exception, null) is null)
            {
                stop.Cancel();
            }
        }

        /// <summary>Stops every stage without a failure of its own (the work was abandoned).</summary>
        public void Cancel() => stop.Cancel();

        /// <summary>Rethrows the first failure; else, when the caller's token was cancelled, an <see cref="OperationCanceledException"/>.</summary>
        public void ThrowIfFailed()
        {
            if (Failure is { } first)
            {
                ExceptionDispatchInfo.Capture(first).Throw();
            }
            cancellationToken.ThrowIfCancellationRequested();
        }

        /// <summary>Waits for every stage thread to end.</summary>
        public void Join()
        {
            foreach (var thread in threads)
            {
                thread.Join();
            }
            joined = true;
        }

        /// <summary>Waits for every stage thread, then rethrows as <see cref="ThrowIfFailed"/> does.</summary>
        public void Wait()
        {
            Join();
            ThrowIfFailed();
        }

        /// <summary>Stops the stages still running, waits for them and frees the token.</summary>
        public void Dispose()
        {
            if (!joined)
            {
                Cancel();
                Join();
            }
            stop.Dispose();
        }
    }

    /// <summary>
    /// A first-in first-out queue between stages that holds at most its capacity: an add waits
    /// while it is full, a take while it is empty. Waits end with an
    /// <see cref="OperationCanceledException"/> when their token is cancelled. A completed queue
    /// takes no more items; its reader sees the end once it is empty (or the error it was completed
    /// with).
    /// </summary>
    /// <remarks>
    /// A lock and <see cref="Monitor"/> waits, not a <c>Channel</c>: stage threads block, and a
    /// blocked thread woken through a channel waits for a thread-pool thread to complete its task
    /// first. On two busy cores that hop cost 5 to 25% of a zstd export (measured against the
    /// lock-based pipeline of before, issue 15). An asynchronous producer (a download) awaits a
    /// completion source instead, so it never blocks a pool thread and never continues on a stage's.
    /// </remarks>
    internal sealed class BoundedQueue<T>
    {
        private readonly object gate = new();
        private readonly Queue<T> items;
        private readonly int capacity;
        private List<TaskCompletionSource>? asyncAdders;
        private int blocked;
        private bool completed;
        private Exception? error;

        /// <summary>A queue of at most <paramref name="capacity"/> items.</summary>
        public BoundedQueue(int capacity)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
            this.capacity = capacity;
            items = new Queue<T>(Math.Min(capacity, 64));
        }

        /// <summary>Items queued now.</summary>
        public int Count
        {
            get
            {
                lock (gate)
                {
                    return items.Count;
                }
            }
        }

        /// <summary>Adds <paramref name="item"/>, waiting while the queue is full. Throws once the queue was completed.</summary>
        public void Add(T item, CancellationToken cancellationToken)
        {
            if (!TryAdd(item, cancellationToken))
            {
                throw new InvalidOperationException("The queue was completed.");
            }
        }

        /// <summary>Adds <paramref name="item"/>, waiting while the queue is full; false once the queue was completed.</summary>
        public bool TryAdd(T item, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (gate)
            {
                if (completed || items.Count < capacity)
                {
                    return AddLocked(item);
                }
            }
            using var wake = Register(cancellationToken);
            lock (gate)
            {
                while (!completed && items.Count >= capacity)
                {
                    Block(cancellationToken);
                }
                return AddLocked(item);
            }
        }

        /// <summary>Adds <paramref name="item"/>, awaiting room; false once the queue was completed.</summary>
        public async ValueTask<bool> TryAddAsync(T item, CancellationToken cancellationToken)
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Task room;
                lock (gate)
                {
                    if (completed || items.Count < capacity)
                    {
                        return AddLocked(item);
                    }
                    // Completed outside the lock, on the pool: the adder must not continue on the
                    // stage thread that took an item.
                    var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    (asyncAdders ??= new()).Add(source);
                    room = source.Task;
                }
                await room.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        /// <summary>Takes the oldest item, waiting while the queue is empty; false at its end.</summary>
        public bool TryTake(out T item, CancellationToken cancellationToken) => Take(out item, remove: true, cancellationToken);

        /// <summary>The oldest item, left in the queue, waiting while the queue is empty; false at its end.</summary>
        public bool TryPeek(out T item, CancellationToken cancellationToken) => Take(out item, remove: false, cancellationToken);

        /// <summary>No more items; the reader sees the end after the last, or <paramref name="error"/> thrown. Idempotent.</summary>
        public void Complete(Exception? error = null)
        {
            lock (gate)
            {
                if (completed)
                {
                    return;
                }
                completed = true;
                this.error = error;
                WakeLocked();
            }
        }

        /// <summary>Completes the queue and hands every item still in it to <paramref name="discard"/> (to give buffers back).</summary>
        public void Close(Action<T> discard)
        {
            List<T> left;
            lock (gate)
            {
                completed = true;
                left = new List<T>(items);
                items.Clear();
                WakeLocked();
            }
            foreach (var item in left)
            {
                discard(item);
            }
        }

        private bool Take(out T item, bool remove, CancellationToken cancellationToken)
        {
            lock (gate)
            {
                if (items.Count > 0 || completed)
                {
                    return TakeLocked(out item, remove);
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            using var wake = Register(cancellationToken);
            lock (gate)
            {
                while (items.Count == 0 && !completed)
                {
                    Block(cancellationToken);
                }
                return TakeLocked(out item, remove);
            }
        }

        private bool AddLocked(T item)
        {
            if (completed)
            {
                return false;
            }
            items.Enqueue(item);
            WakeLocked();
            return true;
        }

        private bool TakeLocked(out T item, bool remove)
        {
            if (items.Count == 0)
            {
                item = default!;
                if (error is not null)
                {
                    ExceptionDispatchInfo.Capture(error).Throw();
                }
                return false;
            }
            if (!remove)
            {
                item = items.Peek();
                return true;
            }
            item = items.Dequeue();
            WakeLocked();
            return true;
        }

        /// <summary>Wakes whoever waits: the state changed (an item in or out, or the end).</summary>
        private void WakeLocked()
        {
            if (blocked > 0)
            {
                Monitor.PulseAll(gate);
            }
            if (asyncAdders is { Count: > 0 })
            {
                foreach (var source in asyncAdders)
                {
                    source.TrySetResult();
                }
                asyncAdders.Clear();
            }
        }

        /// <summary>Waits under the lock for a change, or for <paramref name="cancellationToken"/>.</summary>
        private void Block(CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            blocked++;
            try
            {
                Monitor.Wait(gate);
            }
            finally
            {
                blocked--;
            }
            cancellationToken.ThrowIfCancellationRequested();
        }

        /// <summary>
        /// Wakes the waits when <paramref name="cancellationToken"/> is cancelled. Registered and
        /// disposed outside the lock: disposing waits for a running callback, which takes the lock.
        /// </summary>
        private CancellationTokenRegistration Register(CancellationToken cancellationToken) =>
            cancellationToken.CanBeCanceled
                ? cancellationToken.UnsafeRegister(static state =>
                {
                    var queue = (BoundedQueue<T>)state!;
                    lock (queue.gate)
                    {
                        Monitor.PulseAll(queue.gate);
                    }
                }, this)
                : default;
    }
}
