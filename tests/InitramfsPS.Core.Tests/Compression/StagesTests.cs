using System;
using System.Collections.Generic;
using System.Threading;
using InitramfsPS.IO;
using Xunit;

namespace InitramfsPS.Core.Tests.Compression
{
    public class StagesTests
    {
        [Fact]
        public void Items_pass_through_a_chain_of_stages_in_order()
        {
            using var stages = new Stages(CancellationToken.None);
            var first = new BoundedQueue<int>(2);
            var second = new BoundedQueue<int>(2);
            stages.Start("produce", () =>
            {
                for (int i = 0; i < 1000; i++)
                {
                    first.Add(i, stages.Token);
                }
                first.Complete();
            });
            stages.Start("double", () =>
            {
                while (first.TryTake(out int item, stages.Token))
                {
                    second.Add(item * 2, stages.Token);
                }
                second.Complete();
            });
            var seen = new List<int>();
            stages.Run(() =>
            {
                while (second.TryTake(out int item, stages.Token))
                {
                    seen.Add(item);
                }
            });
            stages.Wait();
            Assert.Equal(1000, seen.Count);
            for (int i = 0; i < seen.Count; i++)
            {
                Assert.Equal(2 * i, seen[i]);
            }
        }

        [Fact]
        public void The_first_failure_cancels_the_other_stages_and_is_the_one_rethrown()
        {
            using var stages = new Stages(CancellationToken.None);
            var never = new BoundedQueue<int>(1);
            var firstFailed = new ManualResetEventSlim();
            bool waiterUnwound = false;
            stages.Start("waits forever", () =>
            {
                try
                {
                    never.TryTake(out _, stages.Token);
                }
                catch (OperationCanceledException)
                {
                    waiterUnwound = true;
                    throw;
                }
            });
            stages.Start("fails first", () =>
            {
                try
                {
                    throw new InvalidOperationException("first");
                }
                finally
                {
                    firstFailed.Set();
                }
            });
            stages.Start("fails later", () =>
            {
                firstFailed.Wait();
                stages.Token.WaitHandle.WaitOne();
                throw new InvalidOperationException("second");
            });
            var thrown = Assert.Throws<InvalidOperationException>(stages.Wait);
            Assert.Equal("first", thrown.Message);
            Assert.True(waiterUnwound);
            Assert.True(stages.Token.IsCancellationRequested);
        }

        [Fact]
        public void The_callers_cancellation_stops_the_stages_as_a_cancellation()
        {
            using var cts = new CancellationTokenSource();
            using var stages = new Stages(cts.Token);
            var never = new BoundedQueue<int>(1);
            stages.Start("waits", () => never.TryTake(out _, stages.Token));
            cts.Cancel();
            Assert.ThrowsAny<OperationCanceledException>(stages.Wait);
            Assert.Null(stages.Failure);
        }

        [Fact]
        public void An_add_waits_while_the_queue_holds_its_capacity()
        {
            var queue = new BoundedQueue<int>(3);
            for (int i = 0; i < 3; i++)
            {
                queue.Add(i, CancellationToken.None);
            }
            Assert.Equal(3, queue.Count);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            Assert.ThrowsAny<OperationCanceledException>(() => queue.Add(3, timeout.Token));
            Assert.Equal(3, queue.Count);

            using var stages = new Stages(CancellationToken.None);
            int added = 0;
            stages.Start("adds", () =>
            {
                queue.Add(3, stages.Token);
                Interlocked.Increment(ref added);
            });
            Thread.Sleep(100);
            Assert.Equal(0, Volatile.Read(ref added));
            Assert.True(queue.TryTake(out int oldest, CancellationToken.None));
            Assert.Equal(0, oldest);
            stages.Wait();
            Assert.Equal(1, added);
            Assert.Equal(3, queue.Count);
        }

        [Fact]
        public void A_completed_queue_ends_after_its_last_item_and_refuses_more()
        {
            var queue = new BoundedQueue<string>(2);
            queue.Add("a", CancellationToken.None);
            queue.Complete();
            Assert.True(queue.TryTake(out string? item, CancellationToken.None));
            Assert.Equal("a", item);
            Assert.False(queue.TryTake(out _, CancellationToken.None));
            Assert.False(queue.TryAdd("b", CancellationToken.None));
        }
    }
}
