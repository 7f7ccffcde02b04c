using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using InitramfsPS.IO;
using InitramfsPS.Images;

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
                    var layers = new ConcurrentDictionary<string, InitramfsProgress>(StringComparer.Ordinal);
                    InitramfsProgress? archive = null;
                    var options = new ImageOptions
                    {
                        Platform = Platform,
                        Credential = Credential?.GetNetworkCredential(),
                        CredentialOrigin = "-Credential",
                        AllowPlainHttp = AllowPlainHttp,
                        Offline = Offline,
                        MaxParallelDownloads = MaxParallelDownloads,
                        ResolvePath = GetUnresolvedProviderPathFromPSPath,
                        Progress = new Reporter<InitramfsProgress>(p =>
                        {
                            if (p.Stage == ProgressStage.Pull)
                            {
                                layers[p.Item] = p;
                            }
                            else
                            {
                                archive = p;
                            }
                        }),
                        Verbose = Verbose,
                    };
                    var cache = Cache;
                    OciImage image;
                    try
                    {
                        // On a thread of its own, so that progress moves while layers download.
                        image = RunInBackground(token => Initramfs.OpenImage(text, options, cache, token), () =>
                        {
                            ShowPull(text, layers);
                            if (archive is { } a)
                            {
                                Progress(2, ArchiveActivity, a.Item, a.Total == 0 ? 100 : (int)(a.Done * 100 / a.Total));
                            }
                        });
                    }
                    finally
                    {
                        if (!layers.IsEmpty)
                        {
                            CompleteProgress(OverallId, PullActivity(text));
                        }
                        if (archive is not null)
                        {
                            CompleteProgress(2, ArchiveActivity);
                        }
                    }
                    var platform = Images.Platform.Parse(Platform);
                    if (MyInvocation.BoundParameters.ContainsKey(nameof(Platform)) && !platform.Matches(image.Platform))
                    {
                        WriteWarning($"{image.Reference} is a single-platform image for {image.Platform}, not {platform}.");
                    }
                    WriteObject(image);
                });
            }
        }

        private const string ArchiveActivity = "Reading docker archive";

        private static string PullActivity(string reference) => $"Pulling {ImageReference.Parse(reference)}";

        /// <summary>One bar for the pull and one per layer, from the layers' latest reports.</summary>
        private void ShowPull(string reference, ConcurrentDictionary<string, InitramfsProgress> layers)
        {
            if (layers.IsEmpty)
            {
                return;
            }
            // Sorted by digest so each layer keeps its bar (activity id) from tick to tick.
            var snapshot = layers.ToArray().OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Value).ToArray();
            long done = snapshot.Sum(p => p.Done), total = Math.Max(1, snapshot.Sum(p => p.Total));
            Progress(OverallId, PullActivity(reference), $"{snapshot.Count(p => p.Done >= p.Total)} of {snapshot.Length} layers, {Units.Bytes(done)} of {Units.Bytes(total)}", (int)(done * 100 / total), force: true);
            for (int i = 0; i < snapshot.Length; i++)
            {
                var layer = snapshot[i];
                var record = new ProgressRecord(OverallId + 1 + i, $"Layer {layer.Item[..Math.Min(layer.Item.Length, 19)]}", $"{Units.Bytes(layer.Done)} of {Units.Bytes(layer.Total)}")
                {
                    ParentActivityId = OverallId,
                    PercentComplete = layer.Total == 0 ? 100 : (int)Math.Min(100, layer.Done * 100 / layer.Total),
                    RecordType = layer.Done >= layer.Total ? ProgressRecordType.Completed : ProgressRecordType.Processing,
                };
                WriteProgress(record);
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
