using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.IO;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Pulls an initramfs artifact (what Publish-Initramfs pushed) back into an archive file and,
    /// with -KernelPath, its kernel: every layer verified against its digest, the manifest against
    /// a pinned reference's digest, the archive against its config's size and digest.
    /// </summary>
    [Cmdlet(VerbsData.Save, "Initramfs", SupportsShouldProcess = true)]
    [OutputType(typeof(SaveReport))]
    public sealed class SaveInitramfsCommand : InitramfsCmdlet
    {
        private const int ActivityId = 5;
        private bool saved;

        /// <summary>The artifact: <c>registry/repository:tag</c>, or <c>@sha256:…</c> (Find-Initramfs's Reference, piped by property name).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(ImageReferenceCompleter))]
        [ValidateNotNullOrEmpty]
        public string Reference { get; set; } = null!;

        /// <summary>The archive file to write.</summary>
        [Parameter(Mandatory = true, Position = 1)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>Where to write the kernel the artifact ships (an artifact without one is an error).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? KernelPath { get; set; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        [Parameter]
        [Credential]
        public PSCredential? Credential { get; set; }

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        [Parameter]
        public SwitchParameter AllowPlainHttp { get; set; }

        /// <summary>Replace the archive and kernel files when they exist.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        /// <summary>How many layers download at once.</summary>
        [Parameter]
        [ValidateRange(1, 32)]
        public int MaxParallelDownloads { get; set; } = 3;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            string archive = string.Empty;
            string? kernel = null;
            if (!Guard(Path, () =>
            {
                archive = FileSystemPath(Path, "OutputPathNotFileSystem", "output path");
                kernel = KernelPath is null ? null : FileSystemPath(KernelPath, "OutputPathNotFileSystem", "kernel path");
            }))
            {
                return;
            }
            Guard(Reference, () =>
            {
                if (saved)
                {
                    throw new Errors.InitramfsException("MultipleInputs", Errors.FailureKind.InvalidArgument,
                        $"Save-Initramfs received more than one artifact for '{archive}'; save each to its own file.", archive);
                }
                string what = kernel is null ? $"Write the initramfs artifact {Reference}" : $"Write the initramfs artifact {Reference} and its kernel to '{kernel}'";
                if (!ShouldProcess(archive, what))
                {
                    return;
                }
                saved = true;
                var blobs = new ConcurrentDictionary<string, InitramfsProgress>(StringComparer.Ordinal);
                var options = new SaveOptions
                {
                    KernelPath = kernel,
                    Credential = Credential?.GetNetworkCredential(),
                    CredentialOrigin = "-Credential",
                    AllowPlainHttp = AllowPlainHttp,
                    Overwrite = Force,
                    MaxParallelDownloads = MaxParallelDownloads,
                    Progress = new Reporter<InitramfsProgress>(p => blobs[p.Item] = p),
                    Verbose = Verbose,
                };
                string activity = $"Saving {Reference}";
                var cache = Cache;
                SaveReport report;
                try
                {
                    // On a thread of its own, so that progress moves while layers download.
                    report = RunInBackground(token => Initramfs.Save(Reference, archive, options, cache, token), () => ShowProgress(activity, blobs));
                }
                finally
                {
                    CompleteProgress(ActivityId, activity);
                }
                WriteVerbose($"{report.Reference}: {report.LayersDownloaded} layers ({Units.Bytes(report.BytesDownloaded)}) downloaded, {report.LayersReused} ({Units.Bytes(report.BytesReused)}) found in the cache.");
                WriteObject(report);
            });
        }

        private void ShowProgress(string activity, ConcurrentDictionary<string, InitramfsProgress> blobs)
        {
            if (blobs.IsEmpty)
            {
                Progress(ActivityId, activity, "reading the manifest", 0);
                return;
            }
            var snapshot = blobs.Values.ToArray();
            long done = snapshot.Sum(p => p.Done), total = Math.Max(1, snapshot.Sum(p => p.Total));
            Progress(ActivityId, activity, $"{snapshot.Count(p => p.Done >= p.Total)} of {snapshot.Length} layers, {Units.Bytes(done)} of {Units.Bytes(total)}", (int)(done * 100 / total));
        }
    }
}
