# Fuzzing (issue 7, part 7): a bounded, seeded run of tests/Fuzz (a coverage-blind mutation fuzzer
# of the tar, gzip/zstd layer, cpio, manifest, index, config, digest and reference readers) with
# zero unhandled exceptions and zero hangs, and a replay of the crashing inputs found so far
# (tests/Fuzz/crashes), kept as regression inputs.
# Budget: 60 s when $env:CI is set, else 15 s; $env:INITRAMFSPS_FUZZ_SECONDS and
# $env:INITRAMFSPS_FUZZ_SEED override. New crashers are written to out/fuzz-crashes/: move them to
# tests/Fuzz/crashes/ (with the fix) so they are replayed from then on.

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
