using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using InitramfsPS.Cache;
using InitramfsPS.IO;
using InitramfsPS.Images;
using InitramfsPS.Layers;
using InitramfsPS.Registry;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Resolves an image reference to an OciImage: manifest, config and layers, verified and in the cache.</summary>
    [Cmdlet(VerbsCommon.Get, "OciImage")]
    [OutputType(typeof(OciImage))]
    public sealed class GetOciImageCommand : InitramfsCmdlet
    {
        private const int OverallId = 4;

        /// <summary>The image: a registry reference, <c>oci:dir[:tag|@digest]</c> or <c>docker-archive:file[:name:tag]</c>.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name", "ImageReference")]
        [ArgumentCompleter(typeof(ImageReferenceCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] Reference { get; set; } = null!;

        /// <summary>The platform to pick from a multi-platform image, <c>os/arch[/variant]</c>; default linux on this machine's architecture.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(PlatformCompleter))]
        [ValidateNotNullOrEmpty]
        public string Platform { get; set; } = Images.Platform.Host.ToString();

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        [Parameter]
        [Credential]
        public PSCredential? Credential { get; set; }

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        [Parameter]
        public SwitchParameter AllowPlainHttp { get; set; }

        /// <summary>Use only the local cache; fail if the image is not there.</summary>
        [Parameter]
        public SwitchParameter Offline { get; set; }

        /// <summary>How many layers download at once.</summary>
        [Parameter]
        [ValidateRange(1, 32)]
        public int MaxParallelDownloads { get; set; } = 3;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            foreach (string text in Reference)
            {
                Guard(text, () =>
                {
                    var platform = Images.Platform.Parse(Platform);
                    var reference = ImageReference.Parse(text);
                    WriteVerbose($"Resolving {reference} for {platform}.");
                    OciImage image = reference.Transport switch
                    {
                        ImageTransport.OciLayout => LayoutResolver.FromLayout(reference, GetUnresolvedProviderPathFromPSPath(reference.Path), platform),
                        ImageTransport.DockerArchive => ImportArchive(reference),
                        _ => Pull(reference, platform),
                    };
                    KeepCacheWithinBudget();
                    if (MyInvocation.BoundParameters.ContainsKey(nameof(Platform)) && !platform.Matches(image.Platform))
                    {
                        WriteWarning($"{reference} is a single-platform image for {image.Platform}, not {platform}.");
                    }
                    WriteObject(image);
                });
            }
        }

        private OciImage Pull(ImageReference reference, Images.Platform platform)
        {
            string activity = $"Pulling {reference}";
            var progress = new ConcurrentDictionary<string, (long Done, long Size)>(StringComparer.Ordinal);
            var cache = Cache;
            var options = new PullOptions
            {
                Offline = Offline,
                MaxParallelDownloads = MaxParallelDownloads,
                Progress = progress,
                // Each compressed layer is unpacked while it downloads, so Expand-OciLayers need not read it again.
                LayerSink = PullSinks.UnpackLayers(cache),
                Registry = new RegistryOptions
                {
                    Credential = Credential is null ? null : new RegistryCredential(Credential.UserName, Credential.GetNetworkCredential().Password, "-Credential"),
                    AllowPlainHttp = AllowPlainHttp,
                    // Timeouts, minimum rate and attempts: the INITRAMFSPS_* variables (a bad value is RegistrySettingInvalid).
                    Limits = Offline ? RegistryLimits.Default : RegistryLimits.FromEnvironment(),
                    Verbose = QueueVerbose,
                },
            };
            try
            {
                return RunInBackground(token => RegistryPuller.PullAsync(reference, platform, cache, options, token), () =>
                {
                    if (progress.IsEmpty)
                    {
                        return;
                    }
                    // Sorted by digest so each layer keeps its bar (activity id) from tick to tick.
                    var snapshot = progress.ToArray().OrderBy(p => p.Key, StringComparer.Ordinal).ToArray();
                    long done = snapshot.Sum(p => p.Value.Done), total = Math.Max(1, snapshot.Sum(p => p.Value.Size));
                    Progress(OverallId, activity, $"{snapshot.Count(p => p.Value.Done >= p.Value.Size)} of {snapshot.Length} layers, {Units.Bytes(done)} of {Units.Bytes(total)}", (int)(done * 100 / total), force: true);
                    for (int i = 0; i < snapshot.Length; i++)
                    {
                        var (key, (layerDone, size)) = (snapshot[i].Key, snapshot[i].Value);
                        var record = new ProgressRecord(OverallId + 1 + i, $"Layer {key[..Math.Min(key.Length, 19)]}", $"{Units.Bytes(layerDone)} of {Units.Bytes(size)}")
                        {
                            ParentActivityId = OverallId,
                            PercentComplete = size == 0 ? 100 : (int)Math.Min(100, layerDone * 100 / size),
                            RecordType = layerDone >= size ? ProgressRecordType.Completed : ProgressRecordType.Processing,
                        };
                        WriteProgress(record);
                    }
                });
            }
            finally
            {
                CompleteProgress(OverallId, activity);
            }
        }

        private OciImage ImportArchive(ImageReference reference)
        {
            const string activity = "Reading docker archive";
            string path = GetUnresolvedProviderPathFromPSPath(reference.Path);
            try
            {
                return DockerArchiveImporter.Import(reference, path, Cache,
                    (done, total) => Progress(2, activity, path, total == 0 ? 100 : (int)(done * 100 / total)), CancellationToken);
            }
            finally
            {
                CompleteProgress(2, activity);
            }
        }
    }

    /// <summary>Completes -Platform with the platforms images are commonly built for.</summary>
    public sealed class PlatformCompleter : IArgumentCompleter
    {
        /// <inheritdoc/>
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            return Images.Platform.Common
                .Where(p => p.StartsWith(wordToComplete.Trim('\'', '"'), StringComparison.OrdinalIgnoreCase))
                .Select(p => new CompletionResult(p, p, CompletionResultType.ParameterValue, p));
        }
    }
}
