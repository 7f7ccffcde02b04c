using System;
using System.IO;
using System.Security.Cryptography;

namespace InitramfsPS.IO
{
    /// <summary>What <see cref="AtomicFileWriter.Commit(string, ExistingFile)"/> does when the destination exists.</summary>
    internal enum ExistingFile
    {
        /// <summary>The new file replaces it.</summary>
        Replace,
        /// <summary>The commit fails with an <see cref="IOException"/>.</summary>
        Fail,
        /// <summary>It stays and the new file is dropped: content-addressed, so the bytes are equal.</summary>
        Keep,
    }

    /// <summary>
    /// A file written under a temporary name, hashed (sha256) as it is written, and renamed to its
    /// destination only once it is whole and on disk: the one writer of the cache's blobs and of an
    /// exported archive, so that a blob's name is the digest this writer computed of its bytes
    /// (umoci's PutBlob) and no failure, Ctrl+C or kill leaves a partial file under the final name.
    /// </summary>
    /// <remarks>
    /// The temporary file is held open exclusively (FileShare.None: an flock the kernel drops when
    /// the process dies), which is how <see cref="Files.SweepStalePartials"/> tells a killed
    /// writer's leftover from a live one's: so it bears its temporary name only while locked (it is
    /// locked before it takes that name, and renamed before it is closed). It is deleted at
    /// <see cref="Dispose"/> unless committed.
    /// I/O errors (a full disk among them) are thrown as they come; the caller names them in its
    /// own terms (CacheWriteFailed, ExportWriteFailed).
    /// </remarks>
    internal sealed partial class AtomicFileWriter : WriteOnlyStream
    {
        private readonly FileStream file;
        private readonly IncrementalHash sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long length;
        private bool closed;
        private bool committed;

        /// <summary>
        /// Creates <paramref name="tempPath"/>, which must not exist, with a write buffer of
        /// <paramref name="bufferSize"/> bytes (1: writes go straight to the file).
        /// </summary>
        public AtomicFileWriter(string tempPath, int bufferSize)
        {
            TempPath = tempPath;
            if (OperatingSystem.IsWindows())
            {
                // Windows refuses to rename a file open without sharing; its FileShare.None is no flock either.
                file = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize);
                return;
            }
            // The open that creates a file and the flock that locks it are two calls: a sweep between
            // them found the file unlocked, took it for a dead writer's and deleted it, and this writer
            // wrote on into a file with no name (its commit failed, file not found). So it is created
            // under a name no sweep matches and takes its temporary name only once locked.
            string creating = tempPath + ".new";
            file = new FileStream(creating, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize);
            try
            {
                File.Move(creating, tempPath, overwrite: false);
            }
            catch
            {
                file.Dispose();
                Files.TryDelete(creating);
                throw;
            }
        }

        /// <summary>The temporary file.</summary>
        public string TempPath { get; }

        /// <summary>Bytes written.</summary>
        public override long Length => length;

        /// <summary>Bytes written; may be set only to where it is (0 after <see cref="SetLength"/>(0)).</summary>
        public override long Position
        {
            get => length;
            set
            {
                if (value != length)
                {
                    throw new NotSupportedException("The file is written in order; only SetLength(0) starts it over.");
                }
            }
        }

        /// <summary>sha256 of the bytes written so far.</summary>
        public byte[] Sha256() => sha256.GetCurrentHash();

        /// <inheritdoc/>
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            file.Write(buffer);
            sha256.AppendData(buffer);
            length += buffer.Length;
        }

        /// <summary>Only 0: drops what was written and starts over (a download the server would not resume).</summary>
        public override void SetLength(long value)
        {
            if (value != 0)
            {
                throw new NotSupportedException("The file can only be started over.");
            }
            file.SetLength(0);
            file.Position = 0;
            sha256.GetHashAndReset();
            length = 0;
        }

        /// <inheritdoc/>
        public override void Flush() => file.Flush();

        /// <summary>Flushes what was written so far to disk (fsync), so that the one at <see cref="Commit(string, ExistingFile)"/> has little left.</summary>
        public void Sync() => file.Flush(true);

        /// <summary>
        /// Starts writing what was written so far to disk and returns without waiting for it, so that
        /// the fsync at <see cref="Commit(string, ExistingFile)"/> has little left. On Linux this is
        /// sync_file_range(SYNC_FILE_RANGE_WRITE); elsewhere (or where that call is refused) it is
        /// the waiting <see cref="Sync"/>.
        /// </summary>
        /// <remarks>
        /// Why not <see cref="Sync"/> on Linux: an export that copies most of its parts from the
        /// cache is bound by its writer thread, and a waiting fsync every 32 MiB stopped it for the
        /// disk's time (Debian minbase rebuild: 50 ms of 330). Started early, the writes overlap the
        /// rest of the export, and the commit's fsync still makes the file durable before its rename.
        /// </remarks>
        public void StartWriteback()
        {
            if (OperatingSystem.IsLinux() && !writebackRefused)
            {
                file.Flush(false);
                if (SysSyncFileRange(file.SafeFileHandle, 0, 0, SyncFileRangeWrite) == 0)
                {
                    return;
                }
                // ENOSYS (an emulator), EINVAL (a file system without it): wait, as before.
                writebackRefused = true;
            }
            Sync();
        }

        private const uint SyncFileRangeWrite = 2;

        private bool writebackRefused;

        [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
        [System.Runtime.InteropServices.DefaultDllImportSearchPaths(System.Runtime.InteropServices.DllImportSearchPath.SafeDirectories)]
        private static partial int SysSyncFileRange(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, long count, uint flags);

        /// <summary>
        /// Flushes the file to disk (fsync), renames it to <paramref name="path"/> and closes it;
        /// <paramref name="existing"/> says what happens if that exists. Returns whether the file
        /// now at <paramref name="path"/> is this one (false: <see cref="ExistingFile.Keep"/> kept
        /// the other and this one is deleted).
        /// </summary>
        /// <remarks>
        /// The file stays open, and so locked, until it has its final name: a temporary file that
        /// opens exclusively is a dead writer's to <see cref="Files.SweepStalePartials"/>, so between
        /// a close and the rename the first sweep of another store (another pull or export starting)
        /// deleted it, and the commit failed with the file not found. Windows cannot rename a file
        /// open without sharing: there it is closed first, and that gap remains.
        /// </remarks>
        public bool Commit(string path, ExistingFile existing) => Commit(path, existing, durable: true);

        /// <summary>
        /// As <see cref="Commit(string, ExistingFile)"/>; without <paramref name="durable"/> the
        /// fsync is left out, for a file that is checked against its digest whenever it is read
        /// (a compressed part): after a crash it may be torn, and is then a miss, not a wrong read.
        /// </summary>
        public bool Commit(string path, ExistingFile existing, bool durable)
        {
            file.Flush(durable);
            if (OperatingSystem.IsWindows())
            {
                CloseFile();
            }
            try
            {
                if (existing == ExistingFile.Keep)
                {
                    if (File.Exists(path))
                    {
                        File.Delete(TempPath);
                        committed = true;
                        return false;
                    }
                    try
                    {
                        File.Move(TempPath, path, overwrite: false);
                    }
                    catch (IOException) when (File.Exists(path))
                    {
                        // Another process committed the same content first.
                        File.Delete(TempPath);
                        committed = true;
                        return false;
                    }
                }
                else
                {
                    File.Move(TempPath, path, overwrite: existing == ExistingFile.Replace);
                }
                committed = true;
                return true;
            }
            finally
            {
                CloseFile();
            }
        }

        private void CloseFile()
        {
            if (!closed)
            {
                closed = true;
                file.Dispose();
            }
        }

        /// <inheritdoc/>
        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                if (!closed)
                {
                    closed = true;
                    DisposeQuietly();
                }
                sha256.Dispose();
                if (!committed)
                {
                    // A leftover would be harmless (never read, swept later), but none is left.
                    Files.TryDelete(TempPath);
                }
            }
            base.Dispose(disposing);
        }

        /// <summary>Closes the file after a failure: a flush that fails again (a full disk) must not hide the first error.</summary>
        private void DisposeQuietly()
        {
            try
            {
                file.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }
}
