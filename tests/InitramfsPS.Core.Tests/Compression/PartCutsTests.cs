using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using InitramfsPS.Compression;
using Xunit;

namespace InitramfsPS.Core.Tests.Compression
{
    /// <summary>The rules of content-defined part boundaries, on entry lists alone (no bytes written).</summary>
    public class PartCutsTests
    {
        private const long MiB = 1 << 20;
        private static readonly PartCuts Cuts = new(4 * MiB, 2 * 4 * MiB);

        private static byte[] Name(string s) => Encoding.UTF8.GetBytes(s);

        /// <summary>The parts an entry list falls into: each part the names and sizes it holds (what its bytes depend on).</summary>
        private static List<List<string>> Parts(PartCuts cuts, IEnumerable<(string Name, long Record)> entries)
        {
            var parts = new List<List<string>> { new() };
            long partBytes = 0, previous = 0;
            foreach (var (name, record) in entries)
            {
                if (cuts.CutBefore(partBytes, previous, Name(name), record))
                {
                    parts.Add(new());
                    partBytes = 0;
                }
                parts[^1].Add($"{name}:{record}");
                partBytes += record;
                previous = record;
            }
            return parts;
        }

        /// <summary>A tree of entries of sizes spread like a distribution's (most small, a few of megabytes).</summary>
        private static List<(string Name, long Record)> Tree(int count, int seed)
        {
            var random = new Random(seed);
            return Enumerable.Range(0, count)
                .Select(i => ($"usr/share/d{i / 50:D4}/f{i:D6}", (long)Math.Min(3 * MiB, Math.Exp(random.NextDouble() * 13) + 120)))
                .ToList();
        }

        [Fact]
        public void No_cut_is_drawn_before_the_minimum_and_one_is_forced_at_the_maximum()
        {
            Assert.False(Cuts.CutBefore(0, 100, Name("a"), 100));
            for (int i = 0; i < 1000; i++)
            {
                Assert.False(Cuts.CutBefore(Cuts.MinBytes - 1, 100_000, Name($"f{i}"), 100));
                Assert.True(Cuts.CutBefore(Cuts.MaxBytes, 100, Name($"f{i}"), 100));
            }
        }

        [Fact]
        public void An_entry_that_would_not_fit_begins_a_part_and_one_larger_than_the_buffer_is_alone()
        {
            Assert.True(Cuts.CutBefore(1000, 100, Name("big"), Cuts.BufferBytes - 500));
            Assert.False(Cuts.CutBefore(1000, 100, Name("fits"), Cuts.BufferBytes - 1000));
            Assert.True(Cuts.CutBefore(Cuts.BufferBytes + 200, Cuts.BufferBytes + 200, Name("after"), 100));
        }

        [Fact]
        public void An_uncompressed_archive_is_never_cut()
        {
            Assert.False(PartCuts.None.CutBefore(long.MaxValue / 8, long.MaxValue / 8, Name("x"), 1 << 30));
        }

        [Fact]
        public void Parts_average_the_target_whatever_the_entry_sizes()
        {
            foreach (long size in new[] { 512L, 16 << 10, 300 << 10 })
            {
                var entries = Enumerable.Range(0, (int)(300 * Cuts.Target / size)).Select(i => ($"d/f{i:D7}", size));
                var parts = Parts(Cuts, entries);
                double average = parts.SkipLast(1).Average(p => p.Count * size);
                // Past the minimum a cut comes after Scale bytes on average, truncated at the maximum.
                double expected = Cuts.MinBytes + Cuts.Scale * (1 - Math.Exp(-(double)(Cuts.MaxBytes - Cuts.MinBytes) / Cuts.Scale));
                Assert.InRange(average, 0.9 * expected, 1.1 * expected + size);
            }
        }

        [Fact]
        public void Adding_replacing_or_removing_one_entry_changes_few_parts()
        {
            int changedTotal = 0, trials = 0;
            for (int seed = 0; seed < 20; seed++)
            {
                var tree = Tree(6000, seed);
                var before = Parts(Cuts, tree).Select(p => string.Join("|", p)).ToHashSet();
                var random = new Random(1000 + seed);
                int at = random.Next(tree.Count);
                var added = tree.ToList();
                added.Insert(at, (tree[at].Name + "-new", 1 * MiB));
                var replaced = tree.ToList();
                replaced[at] = (tree[at].Name, tree[at].Record + 700_000);
                var removed = tree.ToList();
                removed.RemoveAt(at);
                foreach (var changed in new[] { added, replaced, removed })
                {
                    // Parts are compared by the entries (and sizes) they hold, as the bytes would be.
                    var after = Parts(Cuts, changed).Select(p => string.Join("|", p)).ToList();
                    int touched = after.Count(p => !before.Contains(p));
                    Assert.True(touched <= 4, $"seed {seed}: {touched} parts changed");
                    changedTotal += touched;
                    trials++;
                }
            }
            Assert.True(changedTotal <= 1.6 * trials, $"{changedTotal} parts changed in {trials} changes");
        }
    }
}
