# Fuzzing (issue 7, part 7): a bounded, seeded run of tests/Fuzz (a coverage-blind mutation fuzzer
# of the tar, gzip/zstd layer, cpio, manifest, index, config, digest and reference readers) with
# zero unhandled exceptions and zero hangs, and a replay of the crashing inputs found so far
# (tests/Fuzz/crashes), kept as regression inputs.
# Budget: 60 s when $env:CI is set, else 15 s; $env:INITRAMFSPS_FUZZ_SECONDS and
# $env:INITRAMFSPS_FUZZ_SEED override. New crashers are written to out/fuzz-crashes/: move them to
# tests/Fuzz/crashes/ (with the fix) so they are replayed from then on.
#
# Coverage-guided fuzzing (issue 15): afl-fuzz (Debian's afl++) through SharpFuzz on the tar, cpio
# and manifest readers, 30 s each when $env:CI is set, else 10 s ($env:INITRAMFSPS_AFL_SECONDS
# overrides), via tools/fuzz/Invoke-AflFuzz.ps1, which `build.ps1 -Task Fuzz` runs too. A crash it
# finds is copied into tests/Fuzz/crashes/ (so the replay above keeps it) and fails the test naming
# the file. Skipped when afl-fuzz is missing, except in CI (tools/install-deps.sh installs it).

BeforeDiscovery {
    $script:HasAfl = [bool](Get-Command afl-fuzz -CommandType Application -ErrorAction SilentlyContinue)
    $script:AflTargets = @('tar', 'cpio', 'manifest')
}

BeforeAll {
    $script:Root = [IO.Path]::GetFullPath("$PSScriptRoot/../..")
    $script:Harness = Join-Path ([IO.Path]::GetTempPath()) "initramfsps-fuzz-build-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $log = & dotnet build (Join-Path $Root 'tests/Fuzz/InitramfsPS.Fuzz.csproj') --nologo -c Release -o $Harness 2>&1
    if ($LASTEXITCODE -ne 0) { throw "building the fuzz harness failed:`n$($log -join "`n")" }
    $script:Dll = Join-Path $Harness 'InitramfsPS.Fuzz.dll'
    $script:Seconds = if ($env:INITRAMFSPS_FUZZ_SECONDS) { [double]$env:INITRAMFSPS_FUZZ_SECONDS } elseif ($env:CI) { 60 } else { 15 }
    $script:Seed = if ($env:INITRAMFSPS_FUZZ_SEED) { [int]$env:INITRAMFSPS_FUZZ_SEED } else { 20261125 }
}

AfterAll {
    if ($Harness) { Remove-Item -LiteralPath $Harness -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Fuzzing the readers' {
    It 'replays every kept crashing input without an unhandled exception or a hang' {
        $inputs = @(Get-ChildItem (Join-Path $Root 'tests/Fuzz/crashes') -Filter '*.bin')
        $inputs.Count | Should -BeGreaterThan 0
        $out = & dotnet $Dll --replay (Join-Path $Root 'tests/Fuzz/crashes') --timeout-ms 10000 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        ($out -join "`n") | Should -Match "replay: $($inputs.Count) inputs, 0 failing"
    }

    It 'fails the replay of an input that throws an unexpected exception' {
        # The harness's selftest hook throws InvalidOperationException on a byte >= 0x80: the same
        # classification as for a reader, so a regression input that crashes again fails the replay.
        $dir = Join-Path $TestDrive 'replay'
        $null = New-Item -ItemType Directory -Path $dir
        [IO.File]::WriteAllBytes((Join-Path $dir 'selftest-clean.bin'), [Text.Encoding]::ASCII.GetBytes('plain ascii'))
        $out = & dotnet $Dll --replay $dir --timeout-ms 10000 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        ($out -join "`n") | Should -Match 'replay: 1 inputs, 0 failing'

        [IO.File]::WriteAllBytes((Join-Path $dir 'selftest-crash.bin'), [byte[]](0x6F, 0x6B, 0xFF))
        $out = & dotnet $Dll --replay $dir --timeout-ms 10000 2>&1
        $LASTEXITCODE | Should -Be 1
        $text = $out -join "`n"
        $text | Should -Match 'REPLAY FAIL selftest-crash\.bin: Crash System\.InvalidOperationException@'
        $text | Should -Match 'replay: 2 inputs, 1 failing'
        $text | Should -Not -Match 'REPLAY FAIL selftest-clean'
    }

    It 'finds no unhandled exception and no hang in a bounded, seeded run' {
        $crashes = Join-Path $Root 'out/fuzz-crashes'
        $out = & dotnet $Dll --seconds $Seconds --seed $Seed --timeout-ms 5000 --crashes $crashes 2>&1
        $text = $out -join "`n"
        Write-Host ($out | Select-Object -Last 1)
        $LASTEXITCODE | Should -Be 0 -Because "the fuzzer found crashes or a hang (inputs in $crashes):`n$text"
        $text | Should -Match '0 new crash signatures, 0 hangs'
        $text | Should -Match 'tar [1-9]\d*, gzip [1-9]\d*, zstd [1-9]\d*, cpio [1-9]\d*, manifest [1-9]\d*'
    }
}

Describe 'Coverage-guided fuzzing with afl-fuzz' -Skip:(-not $HasAfl -and -not $env:CI) {
    BeforeAll {
        $script:AflScript = Join-Path $Root 'tools/fuzz/Invoke-AflFuzz.ps1'
        $script:AflSeconds = if ($env:INITRAMFSPS_AFL_SECONDS) { [int]$env:INITRAMFSPS_AFL_SECONDS } elseif ($env:CI) { 30 } else { 10 }
        $clock = [Diagnostics.Stopwatch]::StartNew()
        # Builds and instruments the harness, then fuzzes each target in turn.
        $script:AflResults = @(& $AflScript -Target $AflTargets -Seconds $AflSeconds)
        Write-Host "afl-fuzz: $($AflTargets -join ', ') for $AflSeconds s each, $([int]$clock.Elapsed.TotalSeconds) s in all"
    }

    It 'finds no crash in the <_> reader' -ForEach $AflTargets {
        $result = $AflResults | Where-Object Target -EQ $_
        $result | Should -Not -BeNullOrEmpty
        $result.Saved | Should -BeNullOrEmpty -Because "afl-fuzz found crashes, kept as regression inputs: $($result.Saved -join ', ')"
        $result.Crashes | Should -Be 0
        # It ran, and its coverage led it past the seeds.
        $result.Execs | Should -BeGreaterThan 1000
        $result.NewPaths | Should -BeGreaterThan 0
    }

    It 'saves a crash it finds as a regression input that the replay fails on' {
        # The harness's selftest hook crashes on a byte >= 0x80, behind the instrumented reference parser.
        $corpus = Join-Path $TestDrive 'corpus'
        $result = & $AflScript -Target selftest -Seconds 10 -NoBuild -Corpus $corpus
        $result.Crashes | Should -BeGreaterThan 0
        $result.Saved.Count | Should -Be 1 -Because 'every crash of the hook has one signature'
        $saved = $result.Saved[0]
        Split-Path -Leaf $saved | Should -Match '^selftest-afl-[0-9a-f]{12}\.bin$'
        Test-Path -LiteralPath $saved | Should -BeTrue
        $note = Get-Content -Raw -LiteralPath ($saved -replace '\.bin$', '.txt')
        $note | Should -Match '^Found by afl-fuzz'
        $note | Should -Match '(?m)^Crash System\.InvalidOperationException@InitramfsPS\.Fuzz\.Targets\.Run$'
        ([IO.File]::ReadAllBytes($saved) | Where-Object { $_ -ge 0x80 }) | Should -Not -BeNullOrEmpty

        $out = & dotnet $Dll --replay $corpus --timeout-ms 10000 2>&1
        $LASTEXITCODE | Should -Be 1
        ($out -join "`n") | Should -Match "REPLAY FAIL $([regex]::Escape((Split-Path -Leaf $saved))): Crash System\.InvalidOperationException"
    }
}
