using System;
using System.Collections.Generic;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.Export
{
    /// <summary>
    /// The inode numbers of an export: each a hash of the entry's archive name (a hardlink group's,
    /// of its first name), not its position, so that inserting or removing an entry leaves every
    /// other header, and so every other part of the archive, as it was (issue 16).
    /// </summary>
    /// <remarks>
    /// <para>Numbers are unique in an archive. Only hardlink groups need that: the kernel
    /// (init/initramfs.c, maybe_link), GNU cpio and bsdtar match (ino, dev) only among entries
    /// with nlink of 2 or more, so two groups sharing a number would be merged into one. Unique
    /// for all entries costs nothing more and keeps listings (cpio -tv) plain.</para>
    /// <para>A number already taken (about one pair in 100k entries, 32 bits being what newc
    /// holds) makes the later name try its hash under the next salt: only that entry's number then
    /// depends on another entry. 0 is never given: the trailer has it.</para>
    /// </remarks>
    internal sealed class InodeNumbers
    {
        /// <summary>Salts tried per name; 2^32 numbers against an entry cap far below it make this unreachable but bounded.</summary>
        private const int MaxProbes = 1 << 16;

        private readonly HashSet<uint> used;

        /// <summary>Numbers for about <paramref name="entries"/> entries (the set is sized once for them).</summary>
        public InodeNumbers(int entries = 0) => used = new HashSet<uint>(entries);

        /// <summary>The number for the entry named <paramref name="archiveName"/> (UTF-8, as written), not given before.</summary>
        public uint Next(ReadOnlySpan<byte> archiveName)
        {
            for (uint salt = 0; salt < MaxProbes; salt++)
            {
                uint ino = Of(archiveName, salt);
                if (ino != 0 && used.Add(ino))
                {
                    return ino;
                }
            }
            throw new InitramfsException("TooManyEntries", FailureKind.LimitExceeded,
                $"No free inode number was found for an entry after {MaxProbes} tries; the archive holds too many entries.", null);
        }

        /// <summary>The candidate number of a name under a salt.</summary>
        internal static uint Of(ReadOnlySpan<byte> archiveName, uint salt)
        {
            ulong h = StableHash.Of(archiveName, 0x1_0000_0000UL + salt);
            return (uint)(h ^ (h >> 32));
        }
    }
}
