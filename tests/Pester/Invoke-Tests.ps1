#Requires -Version 7.4
<#
.SYNOPSIS
    Runs the Pester suite against the built module and prints `N passed, N failed` last.

.DESCRIPTION
    Meant to run in a child pwsh (build.ps1 -Task Test starts it), because a loaded module
    dll stays locked for the life of the process. Imports Pester 6.2.0 by path from the NuGet
    package folder ($env:NUGET_PACKAGES, else ~/.nuget/packages; `dotnet restore
    tools/pester/Pester.Restore.csproj` puts it there), sets $env:INITRAMFSPS_MODULE to the
    built manifest for the tests, writes NUnit XML, and exits non-zero on any failure.

    The last line printed is always `N passed, N failed`: CI reads it. It adds -AddPassed and
    -AddFailed (the unit tests build.ps1 ran first) to Pester's counts. N failed is Pester's
    FailedCount plus one for each failed block or file with no failed test in it (an AfterAll
    that throws, a file that fails discovery); a run in which no test ran counts as one
    failure. So a broken setup cannot look green.

.EXAMPLE
    dotnet pwsh -NoProfile -File tests/Pester/Invoke-Tests.ps1 -TestPath tests/Pester/<Name>.Tests.ps1 -TestName '*trailer*'
#>
[CmdletBinding()]
param(
    # Built module manifest; default $env:INITRAMFSPS_MODULE, else out/InitramfsPS/InitramfsPS.psd1.
    [string]$ModulePath,
    # Test files or folders; default every tests/Pester/*.Tests.ps1.
    [string[]]$TestPath,
    # Pester full-name filters (wildcards), e.g. '*hardlink*'.
    [string[]]$TestName,
    [string[]]$Tag,
    [string[]]$ExcludeTag,
    # Where the NUnit XML goes; default out/test-results.xml.
    [string]$ResultPath,
    # Tests run before this one (build.ps1 -Task Test: the engine's unit tests), added into the
    # last line so that it counts every test of the run.
    [int]$AddPassed = 0,
    [int]$AddFailed = 0
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# `pwsh -File` hands a list parameter one string: split commas.
function Split-List([string[]]$Values) { @($Values -split ',' | ForEach-Object Trim | Where-Object { $_ }) }
$TestPath = Split-List $TestPath
$TestName = Split-List $TestName
$Tag = Split-List $Tag
$ExcludeTag = Split-List $ExcludeTag

$pesterVersion = '6.2.0'
$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

function Write-Summary([int]$Passed, [int]$Failed) {
    [Console]::Out.WriteLine("$($Passed + $AddPassed) passed, $($Failed + $AddFailed) failed")
}

try {
    if (-not $ModulePath) {
        $ModulePath = if ($env:INITRAMFSPS_MODULE) { $env:INITRAMFSPS_MODULE }
                      else { Join-Path $repoRoot 'out/InitramfsPS/InitramfsPS.psd1' }
    }
    if (-not (Test-Path -LiteralPath $ModulePath -PathType Leaf)) {
        throw "Module manifest '$ModulePath' not found: run ./build.ps1 -Task Build first."
    }
    $env:INITRAMFSPS_MODULE = (Resolve-Path -LiteralPath $ModulePath).Path

    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $pesterManifest = Join-Path $packages "pester/$pesterVersion/tools/Pester.psd1"
    if (-not (Test-Path -LiteralPath $pesterManifest -PathType Leaf)) {
        throw "Pester $pesterVersion not found at '$pesterManifest': run 'dotnet restore tools/pester/Pester.Restore.csproj'."
    }
    Import-Module $pesterManifest -RequiredVersion $pesterVersion -Force

    if (-not $TestPath) {
        $TestPath = @(Get-ChildItem -LiteralPath $PSScriptRoot -Filter '*.Tests.ps1' -File |
            Sort-Object Name | ForEach-Object FullName)
    }
    if (-not $TestPath) { throw "No *.Tests.ps1 files in '$PSScriptRoot'." }
    if (-not $ResultPath) { $ResultPath = Join-Path $repoRoot 'out/test-results.xml' }
    $null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $ResultPath)

    $config = New-PesterConfiguration
    $config.Run.Path = $TestPath
    $config.Run.PassThru = $true
    $config.Run.Exit = $false
    $config.Output.Verbosity = 'Detailed'
    if ([Console]::IsOutputRedirected) { $config.Output.RenderMode = 'Plaintext' }
    $config.TestResult.Enabled = $true
    $config.TestResult.OutputFormat = 'NUnitXml'
    $config.TestResult.OutputPath = $ResultPath
    if ($TestName) { $config.Filter.FullName = $TestName }
    if ($Tag) { $config.Filter.Tag = $Tag }
    if ($ExcludeTag) { $config.Filter.ExcludeTag = $ExcludeTag }

    Write-Host "Module: $env:INITRAMFSPS_MODULE"
    Write-Host "Pester: $pesterManifest"
    # Strict mode is for this runner's own code; the test files run under the defaults their
    # authors wrote them for (they set their own mode where they want one).
    Set-StrictMode -Off
    $result = Invoke-Pester -Configuration $config
    Set-StrictMode -Version Latest
}
catch {
    [Console]::Error.WriteLine("Invoke-Tests: $_")
    Write-Summary 0 1
    exit 1
}

$passed = [int]$result.PassedCount
$failed = [int]$result.FailedCount

# A BeforeAll failure already fails the tests below it; an AfterAll failure or a file that
# fails discovery fails no test, so each of those counts as one failure of its own.
$silentBlocks = @($result.FailedBlocks | Where-Object { $_.FailedCount -eq 0 })
foreach ($block in $silentBlocks) { Write-Host "Failed block with no failed test: $($block.ExpandedPath)" }
$failed += $silentBlocks.Count

$silentContainers = @($result.FailedContainers | Where-Object { $_.FailedCount -eq 0 })
foreach ($container in $silentContainers) { Write-Host "Failed file with no failed test: $($container.Item)" }
$failed += $silentContainers.Count

if ($passed + $failed -eq 0) {
    Write-Host 'No test ran: counted as a failure.'
    $failed = 1
}
if ($failed -eq 0 -and $result.Result -ne 'Passed') {
    Write-Host "Pester reported '$($result.Result)' without a failed test: counted as a failure."
    $failed = 1
}

Write-Host "Test results: $ResultPath"
if ($AddPassed + $AddFailed -gt 0) { Write-Host "Pester: $passed of $($passed + $failed) passed; with the tests run before it:" }
Write-Summary $passed $failed
exit ([int]($failed + $AddFailed -gt 0))
