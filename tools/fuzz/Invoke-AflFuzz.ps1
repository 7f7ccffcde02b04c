<#
.SYNOPSIS
Coverage-guided fuzzing of the readers of untrusted input with afl-fuzz (Debian's afl++) and SharpFuzz.

.DESCRIPTION
Called by `build.ps1 -Task Fuzz` and by tests/Pester/Fuzz.Tests.ps1. Publishes the harness
(tests/Fuzz, its --afl mode) to <OutputDirectory>/bin and instruments InitramfsPS.Core.dll there
with the sharpfuzz tool (the local tool manifest brings it). Then, per target:
  - writes the harness's generated seeds to <OutputDirectory>/<target>/in and replays them: a seed
    that crashes is a bug of its own, which afl-fuzz would only skip;
  - runs afl-fuzz on them for -Seconds (findings in <OutputDirectory>/<target>/findings);
  - replays each input afl-fuzz saved as a crash, groups them by exception type and frame (the
    signature), and copies the smallest of each group into -Corpus as
    <target>-afl-<hash of the signature>.bin, with a .txt saying what it does. tests/Fuzz --replay
    (tests/Pester/Fuzz.Tests.ps1) replays that folder, so each one stays a regression input.
Returns one object per target with afl-fuzz's statistics and the corpus files written (Saved);
the caller decides that a crash fails. Hangs (inputs past -TimeoutMs) are counted and left in the
findings folder: on a loaded machine a slow input is not yet a bug, and the mutation fuzzer's
bounded run already fails on a hang.

afl-fuzz runs without its UI, without CPU binding and without the CPU-governor and core_pattern
checks (AFL_NO_UI, AFL_NO_AFFINITY, AFL_SKIP_CPUFREQ, AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES), so
that it runs as root in CI without a tty; AFL_SKIP_BIN_CHECK because the program it starts is
`dotnet`, whose instrumentation it cannot see.
#>
[CmdletBinding()]
param(
    # tar, cpio, manifest (or another target of tests/Fuzz; selftest is its test hook).
    [string[]] $Target = @('tar', 'cpio', 'manifest'),
    [ValidateRange(1, 86400)]
    [int] $Seconds = 30,
    # Where crashing inputs are kept as regression inputs.
    [string] $Corpus,
    [string] $OutputDirectory,
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # afl-fuzz's -t: an input that runs longer is a hang.
    [int] $TimeoutMs = 5000,
    # Use the instrumented harness already in <OutputDirectory>/bin.
    [switch] $NoBuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$PSNativeCommandUseErrorActionPreference = $false  # exit codes are checked by hand

$root = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../..'))
if (-not $Corpus) { $Corpus = Join-Path $root 'tests/Fuzz/crashes' }
if (-not $OutputDirectory) { $OutputDirectory = Join-Path $root 'out/afl' }
$Corpus = [IO.Path]::GetFullPath($Corpus)
$OutputDirectory = [IO.Path]::GetFullPath($OutputDirectory)
$bin = Join-Path $OutputDirectory 'bin'
$harness = Join-Path $bin 'InitramfsPS.Fuzz.dll'
# Enough to keep every distinct crash of a short run; a run with more has a bigger problem.
$maxCrashFiles = 200

if (-not (Get-Command afl-fuzz -CommandType Application -ErrorAction SilentlyContinue)) {
    throw "afl-fuzz is not installed: run tools/install-deps.sh (the Debian package afl++)."
}

function Assert-ExitCode([string]$What) {
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code $LASTEXITCODE." }
}

if (-not $NoBuild) {
    # Removed first: publish copies only files newer than the output's, and the tool refuses an
    # assembly it instrumented already.
    if (Test-Path -LiteralPath $bin) { Remove-Item -LiteralPath $bin -Recurse -Force }
    $log = dotnet publish (Join-Path $root 'tests/Fuzz/InitramfsPS.Fuzz.csproj') --nologo -c $Configuration -o $bin 2>&1
    if ($LASTEXITCODE -ne 0) { throw "dotnet publish of tests/Fuzz failed:`n$($log -join "`n")" }
    # From the repository root, where the tool manifest is.
    Push-Location -LiteralPath $root
    try { $log = dotnet sharpfuzz (Join-Path $bin 'InitramfsPS.Core.dll') 2>&1 } finally { Pop-Location }
    if ($LASTEXITCODE -ne 0) { throw "sharpfuzz could not instrument InitramfsPS.Core.dll (run 'dotnet tool restore'):`n$($log -join "`n")" }
    Write-Host "Instrumented $bin/InitramfsPS.Core.dll"
}
if (-not (Test-Path -LiteralPath $harness -PathType Leaf)) { throw "No harness at '$harness': run without -NoBuild." }

# afl-fuzz's fuzzer_stats: `name : value` lines.
function Read-AflStats([string]$Path) {
    $stats = @{}
    foreach ($line in Get-Content -LiteralPath $Path) {
        if ($line -match '^\s*(\w+)\s*:\s*(.*?)\s*$') { $stats[$Matches[1]] = $Matches[2] }
    }
    $stats
}

function Get-Hash([string]$Text) {
    [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($Text))).ToLowerInvariant().Substring(0, 12)
}

# Replays one saved input with the harness: its kind and signature, and what it printed.
function Invoke-Replay([string]$File) {
    $output = @(dotnet $harness --replay $File --timeout-ms 10000 2>&1 | ForEach-Object { "$_" })
    $code = $LASTEXITCODE
    $text = $output -join "`n"
    if ($code -eq 0) {
        # A fork server's child has run inputs before (static state, the JIT); a fresh process has
        # not. One group per target, so that such crashes cannot flood the corpus.
        return [pscustomobject]@{ Signature = 'not reproduced by a replay in a fresh process'; Text = $text }
    }
    $fail = $output | Where-Object { $_ -match '^REPLAY FAIL [^:]+: (\S+ .*)$' } | Select-Object -First 1
    if ($code -eq 1 -and $fail) {
        $null = $fail -match '^REPLAY FAIL [^:]+: (\S+ .*)$'
        return [pscustomobject]@{ Signature = $Matches[1]; Text = $text }
    }
    # A stack overflow or a failed runtime ends the process itself.
    [pscustomobject]@{ Signature = "the replay process died with exit code $code"; Text = $text }
}

# The cpio target writes each input's blobs to a cache in the temporary folder, and the cache
# syncs them to disk: on a disk that is about 15 ms an input, on tmpfs nothing (80 against 500
# inputs a second here). tmpfs only with room for the importer's 64 MB limit, many times over.
$workTemp = [IO.Path]::GetTempPath()
if ((Test-Path -LiteralPath '/dev/shm' -PathType Container) -and ([IO.DriveInfo]::new('/dev/shm').AvailableFreeSpace -gt 1GB)) {
    $workTemp = '/dev/shm'
}

$null = New-Item -ItemType Directory -Force -Path $Corpus
foreach ($name in $Target) {
    $dir = Join-Path $OutputDirectory $name
    if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
    $seeds = Join-Path $dir 'in'
    $findings = Join-Path $dir 'findings'
    $null = New-Item -ItemType Directory -Path $seeds

    $log = dotnet $harness --seeds $seeds --target $name 2>&1
    if ($LASTEXITCODE -ne 0) { throw "The harness wrote no seeds for '$name':`n$($log -join "`n")" }
    $log = dotnet $harness --replay $seeds --timeout-ms 10000 2>&1
    if ($LASTEXITCODE -ne 0) { throw "A generated seed of '$name' crashes the reader (inputs in $seeds):`n$($log -join "`n")" }
    $seedCount = @(Get-ChildItem -LiteralPath $seeds -File).Count

    Write-Host "afl-fuzz: $name for $Seconds s ($seedCount seeds, findings in $findings)"
    $aflLog = Join-Path $dir 'afl-fuzz.log'
    # timeout(1) bounds a dry run that never ends; -V ends the fuzzing itself. No diagnostics
    # channel: each .NET process opens one in TMPDIR, and afl-fuzz kills its processes, which then
    # leave it behind.
    $limit = $Seconds + 300
    env TMPDIR=$workTemp DOTNET_EnableDiagnostics=0 AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 `
        timeout --kill-after=10 $limit afl-fuzz -i $seeds -o $findings -t $TimeoutMs -m none -V $Seconds -- dotnet $harness --afl $name *> $aflLog
    $code = $LASTEXITCODE
    $statsFile = Join-Path $findings 'default/fuzzer_stats'
    if ($code -ne 0 -or -not (Test-Path -LiteralPath $statsFile)) {
        $tail = (Get-Content -LiteralPath $aflLog -Tail 25) -join "`n"
        throw "afl-fuzz on '$name' failed with exit code $code (log $aflLog):`n$tail"
    }
    $stats = Read-AflStats $statsFile

    $saved = [Collections.Generic.List[string]]::new()
    $crashFiles = @(Get-ChildItem -LiteralPath (Join-Path $findings 'default/crashes') -File -Filter 'id:*' -ErrorAction SilentlyContinue |
        Sort-Object Length, Name | Select-Object -First $maxCrashFiles)
    if ($crashFiles) {
        $triage = Join-Path $dir 'triage'
        $null = New-Item -ItemType Directory -Path $triage
        $groups = [ordered]@{}
        $i = 0
        foreach ($crash in $crashFiles) {
            # The harness takes the target from the name.
            $copy = Join-Path $triage ('{0}-{1:D4}.bin' -f $name, $i++)
            Copy-Item -LiteralPath $crash.FullName -Destination $copy
            $replay = Invoke-Replay $copy
            # Smallest first: the first of a signature is the one kept.
            if (-not $groups.Contains($replay.Signature)) {
                $groups[$replay.Signature] = [pscustomobject]@{ File = $crash; Replay = $replay }
            }
        }
        foreach ($signature in $groups.Keys) {
            $group = $groups[$signature]
            $base = Join-Path $Corpus "$name-afl-$(Get-Hash "$name|$signature")"
            if (Test-Path -LiteralPath "$base.bin") {
                Write-Host "afl-fuzz: $name crashes again as the kept input $base.bin ($signature)"
            }
            else {
                Copy-Item -LiteralPath $group.File.FullName -Destination "$base.bin"
                $note = @(
                    "Found by afl-fuzz (tools/fuzz/Invoke-AflFuzz.ps1, target $name, $([DateTime]::UtcNow.ToString('yyyy-MM-dd'))) as $($group.File.Name); not fixed yet."
                    $signature
                    $group.Replay.Text
                ) -join "`n"
                [IO.File]::WriteAllText("$base.txt", "$note`n")
                Write-Host "afl-fuzz: $name crash saved as $base.bin ($signature)" -ForegroundColor Red
            }
            $saved.Add("$base.bin")
        }
    }

    $result = [pscustomobject]@{
        Target         = $name
        Seconds        = [int]$stats['run_time']
        Execs          = [long]$stats['execs_done']
        ExecsPerSecond = [double]$stats['execs_per_sec']
        Seeds          = $seedCount
        Paths          = [int]$stats['corpus_count']
        NewPaths       = [int]$stats['corpus_found']
        Edges          = [int]$stats['edges_found']
        Stability      = $stats['stability']
        Crashes        = [int]$stats['saved_crashes']
        Hangs          = [int]$stats['saved_hangs']
        Saved          = @($saved)
        Findings       = $findings
    }
    Write-Host ('afl-fuzz: {0}: {1} s, {2} execs ({3:F0}/s), {4} paths ({5} new from {6} seeds), {7} edges, stability {8}, {9} crashes, {10} hangs' -f
        $name, $result.Seconds, $result.Execs, $result.ExecsPerSecond, $result.Paths, $result.NewPaths, $result.Seeds, $result.Edges, $result.Stability, $result.Crashes, $result.Hangs)
    $result
    $tmp = Join-Path $workTemp "initramfsps-afl-$name"
    if (Test-Path -LiteralPath $tmp) { Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue }
}
