using System;
using System.Collections.Generic;
using System.Linq;
using System.Diagnostics;
using System.IO;
using System.Management.Automation;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// What every cmdlet of the module shares: Ctrl+C cancels the work in progress, failures become
    /// one ErrorRecord each with a stable id, and progress is throttled so it costs nothing.
    /// </summary>
    public abstract class InitramfsCmdlet : PSCmdlet, IDisposable
    {
        private readonly CancellationTokenSource cancellation = new();
        private readonly System.Collections.Concurrent.ConcurrentQueue<(bool Warning, string Text)> messages = new();
        private readonly Stopwatch progressClock = Stopwatch.StartNew();
        private readonly int pipelineThread = Environment.CurrentManagedThreadId;
        private long lastProgress = -1000;
        private InitramfsCache? cache;

        /// <summary>
        /// The cache as this command uses it: what the command reads from it or writes to it is leased
        /// (no eviction, in this process or another, removes it) until the pipeline ends, and marked as
        /// used; after a write it is kept within its budget, saying what it evicted with -Verbose.
        /// </summary>
        protected InitramfsCache Cache => cache ??= new InitramfsCache { Verbose = Verbose, Warning = Warning };

        /// <summary>
        /// Writes a verbose message, from any thread: one from another thread is queued and written
        /// by <see cref="RunInBackground"/> (PowerShell allows Write-* only on the pipeline thread).
        /// </summary>
        protected void Verbose(string message) => Say(warning: false, message);

        /// <summary>Writes a warning, from any thread (as <see cref="Verbose"/>).</summary>
        protected void Warning(string message) => Say(warning: true, message);

        private void Say(bool warning, string message)
        {
            if (Environment.CurrentManagedThreadId != pipelineThread)
            {
                messages.Enqueue((warning, message));
                return;
            }
            // What other threads queued came first.
            DrainMessages();
            Write(warning, message);
        }

        private void Write(bool warning, string message)
        {
            if (warning)
            {
                WriteWarning(message);
            }
            else
            {
                WriteVerbose(message);
            }
        }

        /// <summary>Leases the cache entries <paramref name="rootfs"/> reads its contents from, for as long as this command runs.</summary>
        protected Rootfs Leased(Rootfs rootfs)
        {
            Cache.Use(rootfs);
            return rootfs;
        }

        /// <summary>Cancelled when the user presses Ctrl+C.</summary>
        protected CancellationToken CancellationToken => cancellation.Token;

        /// <inheritdoc/>
        protected override void StopProcessing() => cancellation.Cancel();

        /// <summary>
        /// Runs <paramref name="action"/>, turning our failures into non-terminating errors on
        /// <paramref name="target"/>; false when it failed.
        /// </summary>
        protected bool Guard(object? target, Action action)
        {
            try
            {
                action();
                return true;
            }
            catch (InitramfsException ex)
            {
                WriteError(ToErrorRecord(ex, target));
                return false;
            }
            catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
            catch (Exception ex) when (HostFailure(ex, target) is { } failure)
            {
                WriteError(ToErrorRecord(failure, target));
                return false;
            }
        }

        /// <summary>
        /// The safety net of <see cref="Guard"/>: what the host file system can throw at any file
        /// access (a path deeper than PATH_MAX, a file that vanished, a read-only or special file
        /// system, a full disk) becomes an error with a stable id that names the path, even where
        /// the engine does not map it itself. Any other exception is a bug, not bad input: it is
        /// not caught, so it surfaces as it is (a terminating error naming its type) to be seen and
        /// fixed, rather than passed off under an id a script would take for a user's mistake.
        /// </summary>
        internal static InitramfsException? HostFailure(Exception ex, object? target)
        {
            string what = target is null ? ex.Message : $"{target}: {ex.Message}";
            return ex switch
            {
                PathTooLongException => new InitramfsException("HostPathTooLong", FailureKind.LimitExceeded, $"A host path is too long ({what}).", target, ex),
                FileNotFoundException or DirectoryNotFoundException => new InitramfsException("HostPathNotFound", FailureKind.NotFound, $"A host file or directory is missing ({what}).", target, ex),
                UnauthorizedAccessException => new InitramfsException("HostAccessDenied", FailureKind.AccessDenied, $"Access to a host file was denied ({what}).", target, ex),
                IOException => new InitramfsException("HostIOFailed", FailureKind.HostFailed, $"A host file operation failed ({what}).", target, ex),
                _ => null,
            };
        }

        /// <summary>
        /// Host files named by -Path (wildcards) or -LiteralPath. A path that matches nothing or is not
        /// on the file system is one error each (with the caller's ids) and is left out;
        /// <paramref name="failed"/> says whether any was.
        /// </summary>
        protected List<string> ResolveHostPaths(string[]? paths, string[]? literalPaths, string notFoundId, string notFileSystemId, string what, out bool failed)
        {
            failed = false;
            var result = new List<string>();
            foreach (string p in literalPaths ?? paths ?? Array.Empty<string>())
            {
                try
                {
                    if (literalPaths is not null)
                    {
                        result.Add(FileSystemPath(p, notFileSystemId, what));
                        continue;
                    }
                    var resolved = GetResolvedProviderPathFromPSPath(p, out var provider);
                    if (provider.Name != "FileSystem")
                    {
                        throw new InitramfsException(notFileSystemId, FailureKind.InvalidArgument, $"'{p}' is not a file system path.", p);
                    }
                    if (resolved.Count == 0)
                    {
                        throw new InitramfsException(notFoundId, FailureKind.NotFound, $"The {what} '{p}' matches nothing.", p);
                    }
                    result.AddRange(resolved);
                }
                catch (ItemNotFoundException)
                {
                    WriteError(ToErrorRecord(new InitramfsException(notFoundId, FailureKind.NotFound, $"The {what} '{p}' does not exist.", p), p));
                    failed = true;
                }
                catch (SessionStateException ex)
                {
                    // A drive or provider that does not exist ('nope:/x').
                    WriteError(ToErrorRecord(new InitramfsException(notFileSystemId, FailureKind.InvalidArgument, $"'{p}' is not a file system path: {ex.Message}", p, ex), p));
                    failed = true;
                }
                catch (InitramfsException ex)
                {
                    WriteError(ToErrorRecord(ex, p));
                    failed = true;
                }
            }
            return result;
        }

        /// <summary>
        /// The file system path a -LiteralPath or output path names, resolved against the current
        /// location but not required to exist. A path of another provider (<c>env:/x</c>) or of a
        /// drive that does not exist is an error with <paramref name="notFileSystemId"/>: taken as
        /// it was, it named a file relative to the process's directory.
        /// </summary>
        protected string FileSystemPath(string path, string notFileSystemId, string what)
        {
            ProviderInfo provider;
            string resolved;
            try
            {
                resolved = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out provider, out _);
            }
            catch (SessionStateException ex)
            {
                throw new InitramfsException(notFileSystemId, FailureKind.InvalidArgument, $"The {what} '{path}' is not a file system path: {ex.Message}", path, ex);
            }
            if (provider.Name != "FileSystem")
            {
                throw new InitramfsException(notFileSystemId, FailureKind.InvalidArgument, $"The {what} '{path}' is not a file system path (it is on the {provider.Name} provider).", path);
            }
            return resolved;
        }

        /// <summary>An ErrorRecord with the exception's stable id and the matching category.</summary>
        protected static ErrorRecord ToErrorRecord(InitramfsException ex, object? target)
        {
            var category = ex.Kind switch
            {
                FailureKind.InvalidArgument => ErrorCategory.InvalidArgument,
                FailureKind.NotFound => ErrorCategory.ObjectNotFound,
                FailureKind.InvalidData => ErrorCategory.InvalidData,
                FailureKind.NotImplemented => ErrorCategory.NotImplemented,
                FailureKind.Security => ErrorCategory.SecurityError,
                FailureKind.LimitExceeded => ErrorCategory.LimitsExceeded,
                FailureKind.WriteFailed => ErrorCategory.WriteError,
                FailureKind.NotBootable => ErrorCategory.InvalidResult,
                FailureKind.AccessDenied => ErrorCategory.PermissionDenied,
                FailureKind.ReadFailed => ErrorCategory.ReadError,
                FailureKind.HostFailed => ErrorCategory.ResourceUnavailable,
                _ => ErrorCategory.NotSpecified,
            };
            return new ErrorRecord(ex, ex.ErrorId, category, ex.Target ?? target);
        }

        /// <summary>Writes progress at most ten times a second, and always when <paramref name="force"/> is set.</summary>
        protected void Progress(int activityId, string activity, string status, int percent, bool force = false, int secondsRemaining = -1)
        {
            long now = progressClock.ElapsedMilliseconds;
            if (!force && now - lastProgress < 100)
            {
                return;
            }
            lastProgress = now;
            WriteProgress(new ProgressRecord(activityId, activity, status) { PercentComplete = Math.Clamp(percent, 0, 100), SecondsRemaining = secondsRemaining });
        }

        /// <summary>Ends a progress bar.</summary>
        protected void CompleteProgress(int activityId, string activity)
            => WriteProgress(new ProgressRecord(activityId, activity, "Done") { RecordType = ProgressRecordType.Completed });

        /// <summary>
        /// Runs <paramref name="work"/> on the thread pool while this (pipeline) thread writes the
        /// messages it queues: PowerShell allows Write-* calls only from the pipeline thread.
        /// <paramref name="tick"/> runs on this thread about ten times a second (for progress).
        /// </summary>
        protected T RunInBackground<T>(Func<CancellationToken, T> work, Action tick)
        {
            var task = System.Threading.Tasks.Task.Run(() => work(CancellationToken));
            try
            {
                while (!task.IsCompleted)
                {
                    System.Threading.Tasks.Task.WhenAny(task, System.Threading.Tasks.Task.Delay(100)).Wait();
                    DrainMessages();
                    tick();
                }
            }
            catch (PipelineStoppedException)
            {
                // Ctrl+C: a Write-* now throws, but the work is still unwinding (joining its threads,
                // deleting its temporary file). The command ends once it has, so that nothing it
                // was writing is left behind when the prompt (or a script's Stop()) comes back.
                task.Wait(TimeSpan.FromSeconds(60));
                throw;
            }
            DrainMessages();
            return task.GetAwaiter().GetResult();
        }

        private void DrainMessages()
        {
            while (messages.TryDequeue(out var message))
            {
                Write(message.Warning, message.Text);
            }
        }

        /// <summary>Expands an image into a rootfs with progress; shared by every cmdlet that takes an image.</summary>
        protected Rootfs ExpandImage(OciImage image, long maxLayerSize)
        {
            const string activity = "Expanding image layers";
            // Expansion reports on this thread: the progress is written as it comes.
            var progress = new Reporter<InitramfsProgress>(p => Progress(1, activity,
                $"{p.Item}: layer {p.Index} of {p.Count}", (int)((p.Index - 1 + (p.Total == 0 ? 1 : (double)p.Done / p.Total)) * 100 / Math.Max(1, p.Count))));
            try
            {
                return Initramfs.Expand(image, Cache, maxLayerSize, progress, CancellationToken);
            }
            finally
            {
                CompleteProgress(1, activity);
            }
        }

        /// <summary>Releases the cancellation source and the lease on the cache (PowerShell calls it when the pipeline ends).</summary>
        public void Dispose()
        {
            cache?.Dispose();
            cancellation.Dispose();
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>
    /// A cmdlet that works on a rootfs taken from the pipeline: a Rootfs, or an OciImage that is
    /// expanded on the spot, so <c>Get-OciImage x | Add-InitramfsFile …</c> needs no Expand-OciLayers.
    /// </summary>
    public abstract class RootfsCmdlet : InitramfsCmdlet
    {
        /// <summary>The rootfs or image to work on.</summary>
        [Parameter(Mandatory = true, ValueFromPipeline = true)]
        [ValidateNotNull]
        public PSObject InputObject { get; set; } = null!;

        /// <summary>
        /// The rootfs to change: a copy of a piped Rootfs (copy-on-write, so the caller's object never
        /// changes) or a freshly expanded image. Null after writing an error for any other input.
        /// </summary>
        protected Rootfs? RootfsToChange()
        {
            return InputObject.BaseObject switch
            {
                Rootfs rootfs => rootfs.Clone(),
                OciImage image => ExpandImage(image, Initramfs.DefaultMaxLayerSize),
                var other => Reject(other),
            };
        }

        /// <summary>
        /// The rootfs to read: a piped Rootfs as is (its contents in the cache leased, so that no
        /// eviction takes them while it is read), or an expanded image.
        /// </summary>
        protected Rootfs? RootfsToRead()
        {
            return InputObject.BaseObject switch
            {
                Rootfs rootfs => Leased(rootfs),
                OciImage image => ExpandImage(image, Initramfs.DefaultMaxLayerSize),
                var other => Reject(other),
            };
        }

        private Rootfs? Reject(object other)
        {
            WriteError(new ErrorRecord(
                new ArgumentException($"Expected a Rootfs or an OciImage (from Get-OciImage or Expand-OciLayers), got {other.GetType().Name} '{other}'."),
                "InputNotRootfs", ErrorCategory.InvalidType, other));
            return null;
        }
    }

    /// <summary>An <see cref="IProgress{T}"/> that calls its action on the reporting thread (not through a synchronization context).</summary>
    internal sealed class Reporter<T> : IProgress<T>
    {
        private readonly Action<T> report;

        public Reporter(Action<T> report) => this.report = report;

        public void Report(T value) => report(value);
    }
}
