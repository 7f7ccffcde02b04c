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
        [Fact]
        public void A_take_waiting_on_an_empty_queue_ends_with_its_token()
        {
            var queue = new BoundedQueue<int>(1);
            using var stop = new CancellationTokenSource();
            Exception? seen = null;
            var taker = new Thread(() =>
            {
                try
                {
                    queue.TryTake(out _, stop.Token);
                }
                catch (Exception ex)
                {
                    seen = ex;
                }
            });
            taker.Start();
            Thread.Sleep(100);
            Assert.True(taker.IsAlive);
            stop.Cancel();
            Assert.True(taker.Join(TimeSpan.FromSeconds(5)));
            Assert.IsAssignableFrom<OperationCanceledException>(seen);
        }

        [Fact]
        public void A_queue_completed_with_an_error_throws_it_after_its_last_item()
        {
            var queue = new BoundedQueue<int>(2);
            queue.Add(1, CancellationToken.None);
            queue.Complete(new System.IO.InvalidDataException("corrupt"));
            Assert.True(queue.TryTake(out int first, CancellationToken.None));
            Assert.Equal(1, first);
            Assert.Throws<System.IO.InvalidDataException>(() => queue.TryTake(out _, CancellationToken.None));
        }

        [Fact]
        public async System.Threading.Tasks.Task An_asynchronous_add_awaits_room_and_a_close_releases_it()
        {
            var queue = new BoundedQueue<int>(1);
            Assert.True(await queue.TryAddAsync(1, CancellationToken.None));
            var second = queue.TryAddAsync(2, CancellationToken.None).AsTask();
            await System.Threading.Tasks.Task.Delay(100, TestContext.Current.CancellationToken);
            Assert.False(second.IsCompleted);
            Assert.True(queue.TryTake(out int taken, CancellationToken.None));
            Assert.Equal(1, taken);
            Assert.True(await second.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));

            var third = queue.TryAddAsync(3, CancellationToken.None).AsTask();
            var discarded = new List<int>();
            queue.Close(discarded.Add);
            Assert.False(await third.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
            Assert.Equal(new[] { 2 }, discarded);
            Assert.False(queue.TryTake(out _, CancellationToken.None));
        }
    }
}
