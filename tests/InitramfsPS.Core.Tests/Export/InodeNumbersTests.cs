using System.Collections.Generic;
using System.Text;
using InitramfsPS.Export;
using Xunit;

namespace InitramfsPS.Core.Tests.Export
{
    public class InodeNumbersTests
    {
        private static byte[] Name(string s) => Encoding.UTF8.GetBytes(s);

        [Fact]
        public void A_name_gets_the_same_number_whatever_comes_before_it()
        {
            var alone = new InodeNumbers();
            uint expected = alone.Next(Name("usr/bin/agent"));

            var crowded = new InodeNumbers();
            for (int i = 0; i < 1000; i++)
            {
                crowded.Next(Name($"usr/lib/file{i}"));
            }
            Assert.Equal(expected, crowded.Next(Name("usr/bin/agent")));
            Assert.Equal(InodeNumbers.Of(Name("usr/bin/agent"), 0), expected);
        }

        [Fact]
        public void Numbers_are_unique_and_never_zero_in_a_large_archive()
        {
            var inodes = new InodeNumbers();
            var seen = new HashSet<uint>();
            for (int i = 0; i < 200_000; i++)
            {
                uint ino = inodes.Next(Name($"srv/data/{i / 1000}/f{i}"));
                Assert.NotEqual(0u, ino);
                Assert.True(seen.Add(ino), $"{ino} given twice");
            }
        }

        [Fact]
        public void A_name_whose_number_is_taken_gets_its_next_candidate_and_only_it_moves()
        {
            // Find two names with the same first candidate (a birthday search over 32 bits).
            var first = new Dictionary<uint, string>();
            string? a = null, b = null;
            for (int i = 0; i < 2_000_000 && a is null; i++)
            {
                string name = $"n{i}";
                uint ino = InodeNumbers.Of(Name(name), 0);
                if (first.TryGetValue(ino, out var other))
                {
                    a = other;
                    b = name;
                }
                else
                {
                    first[ino] = name;
                }
            }
            Assert.NotNull(a);
            var inodes = new InodeNumbers();
            uint ia = inodes.Next(Name(a!));
            uint ib = inodes.Next(Name(b!));
            Assert.Equal(InodeNumbers.Of(Name(a!), 0), ia);
            Assert.NotEqual(ia, ib);
            Assert.Equal(InodeNumbers.Of(Name(b!), 1), ib);
        }
    }
}
