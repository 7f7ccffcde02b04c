using System;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using InitramfsPS.Cache;
using Xunit;

namespace InitramfsPS.Core.Tests.Cache
{
    public sealed class PartRecipesTests : IDisposable
    {
        private readonly string root = Path.Combine(Path.GetTempPath(), "initramfsps-recipes-" + Guid.NewGuid().ToString("N"));

        public void Dispose()
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }

        private static byte[] Hash(string s) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s));

        private string RecordPath(byte[] recipe) => Path.Combine(root, PartRecipes.DirectoryName, Convert.ToHexString(recipe).ToLowerInvariant());

        [Fact]
        public void A_remembered_recipe_is_recalled_by_another_instance()
        {
            new PartRecipes(root).Remember(Hash("recipe"), Hash("bytes"), 4242);
            var known = new PartRecipes(root).Recall(Hash("recipe"));
            Assert.NotNull(known);
            Assert.Equal(Hash("bytes"), known!.Value.Sha256);
            Assert.Equal(4242, known.Value.Length);
            Assert.Null(new PartRecipes(root).Recall(Hash("other")));
        }

        [Theory]
        [InlineData("truncated")]
        [InlineData("flipped")]
        [InlineData("another recipe's")]
        public void A_bad_record_is_a_miss_and_is_removed(string damage)
        {
            var recipes = new PartRecipes(root);
            recipes.Remember(Hash("recipe"), Hash("bytes"), 10);
            recipes.Remember(Hash("other"), Hash("other bytes"), 10);
            string path = RecordPath(Hash("recipe"));
            byte[] record = File.ReadAllBytes(path);
            switch (damage)
            {
                case "truncated":
                    File.WriteAllBytes(path, record[..^1]);
                    break;
                case "flipped":
                    record[40] ^= 1;
                    File.WriteAllBytes(path, record);
                    break;
                default:
                    File.Copy(RecordPath(Hash("other")), path, overwrite: true);
                    break;
            }
            Assert.Null(recipes.Recall(Hash("recipe")));
            Assert.False(File.Exists(path));
            Assert.NotNull(recipes.Recall(Hash("other")));
        }

        [Fact]
        public void Past_the_bound_the_older_half_goes()
        {
            var recipes = new PartRecipes(root);
            for (int i = 0; i < 40; i++)
            {
                recipes.Remember(Hash($"r{i}"), Hash($"b{i}"), i);
                File.SetLastWriteTimeUtc(RecordPath(Hash($"r{i}")), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMinutes(i));
            }
            recipes.Trim(maxRecords: 32);
            var left = Directory.GetFiles(Path.Combine(root, PartRecipes.DirectoryName)).Select(Path.GetFileName).ToHashSet();
            Assert.Equal(16, left.Count);
            Assert.Contains(Convert.ToHexString(Hash("r39")).ToLowerInvariant(), left);
            Assert.DoesNotContain(Convert.ToHexString(Hash("r0")).ToLowerInvariant(), left);
        }

        [Fact]
        public void Clear_removes_the_records()
        {
            new PartRecipes(root).Remember(Hash("recipe"), Hash("bytes"), 1);
            CacheInventory.Clear(new BlobStore(root));
            Assert.Null(new PartRecipes(root).Recall(Hash("recipe")));
        }
    }
}
