using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Threading;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// What an export learnt about its parts: for a part's recipe (what its bytes are made of,
    /// hashed: the headers and the identity of each content), the sha256 and length of its
    /// uncompressed bytes. With it, a rebuild finds an unchanged part in the part cache without
    /// reading the files it holds (issue 16). One small record per recipe, in
    /// <c>part-recipes/&lt;hex&gt;</c>.
    /// </summary>
    /// <remarks>
    /// A record only says which key to look up: the compressed bytes it leads to are verified by
    /// the part cache against their digest, and their key is the sha256 of the uncompressed
    /// bytes that an export computed from the bytes themselves. A record carries its own checksum;
    /// one that is short, garbage, or names another recipe is a miss and is removed. The records
    /// are bounded: past <see cref="MaxRecords"/>, the older half goes.
    /// </remarks>
    internal sealed class PartRecipes
    {
        /// <summary>The directory of the records in the cache root.</summary>
        public const string DirectoryName = "part-recipes";

        /// <summary>Records kept at most (112 bytes each, about 60 per GB of archive built).</summary>
        public const int MaxRecords = 1 << 16;

        private const int RecordLength = 4 + 32 + 32 + 8 + 32;

        /// <summary>Records written in this process: every so many, the count is checked against the bound.</summary>
        private static int written;

        private readonly string directory;

        /// <summary>The records of the cache at <paramref name="cacheRoot"/>.</summary>
        public PartRecipes(string cacheRoot) => directory = Path.Combine(cacheRoot, DirectoryName);

        /// <summary>The uncompressed sha256 and length recorded for <paramref name="recipe"/>; null when none (or the record was bad, and is gone).</summary>
        public (byte[] Sha256, long Length)? Recall(byte[] recipe)
        {
            string path = PathOf(recipe);
            byte[] record = new byte[RecordLength];
            bool whole;
            try
            {
                using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
                whole = RandomAccess.GetLength(handle) == RecordLength && RandomAccess.Read(handle, record, 0) == RecordLength;
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Files.TryDelete(path);
                return null;
            }
            var body = record.AsSpan(0, RecordLength - 32);
            if (!whole || !body[..4].SequenceEqual("IPR1"u8) || !body.Slice(4, 32).SequenceEqual(recipe)
                || !SHA256.HashData(body).AsSpan().SequenceEqual(record.AsSpan(RecordLength - 32))
                || BinaryPrimitives.ReadInt64LittleEndian(body[68..]) is < 0)
            {
                Files.TryDelete(path);
                return null;
            }
            return (body.Slice(36, 32).ToArray(), BinaryPrimitives.ReadInt64LittleEndian(body[68..]));
        }

        /// <summary>Records that the part of <paramref name="recipe"/> is <paramref name="length"/> bytes of sha256 <paramref name="sha256"/>. A failure to write is ignored: the record only saves work.</summary>
        public void Remember(byte[] recipe, byte[] sha256, long length)
        {
            byte[] record = new byte[RecordLength];
            "IPR1"u8.CopyTo(record);
            recipe.CopyTo(record, 4);
            sha256.CopyTo(record, 36);
            BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(68), length);
            SHA256.HashData(record.AsSpan(0, RecordLength - 32)).CopyTo(record, RecordLength - 32);
            string path = PathOf(recipe);
            string temp = $"{path}.{Guid.NewGuid():N}.tmp";
            try
            {
                Directory.CreateDirectory(directory);
                File.WriteAllBytes(temp, record);
                File.Move(temp, path, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Files.TryDelete(temp);
                return;
            }
            if (Interlocked.Increment(ref written) % 1024 == 0)
            {
                Trim();
            }
        }

        /// <summary>Removes the older half of the records once there are more than <see cref="MaxRecords"/>.</summary>
        internal void Trim(int maxRecords = MaxRecords)
        {
            try
            {
                var records = new DirectoryInfo(directory).EnumerateFiles().Take(4 * maxRecords).ToList();
                if (records.Count <= maxRecords)
                {
                    return;
                }
                foreach (var old in records.OrderBy(f => f.LastWriteTimeUtc).Take(records.Count - (maxRecords / 2)))
                {
                    Files.TryDelete(old.FullName);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Trimming is upkeep: the next one tries again.
            }
        }

        private string PathOf(byte[] recipe) => Path.Combine(directory, Convert.ToHexString(recipe).ToLowerInvariant());
    }
}
