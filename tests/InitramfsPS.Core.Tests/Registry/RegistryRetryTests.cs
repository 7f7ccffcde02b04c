using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.Registry;
using Xunit;

namespace InitramfsPS.Core.Tests.Registry
{
    /// <summary>
    /// The retry handler of the registry client, over a stub registry: a registry that hiccups
    /// still serves a pull, one that is down ends it in bounded time, and Ctrl+C ends it at once.
    /// </summary>
    public class RegistryRetryTests
    {
        private static HttpResponseMessage Status(HttpStatusCode status, TimeSpan? retryAfter = null)
        {
            var response = StubRegistry.Json(status, "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"busy\"}]}");
            if (retryAfter is { } delay)
            {
                response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(delay);
            }
            return response;
        }

        [Theory]
        [InlineData(HttpStatusCode.InternalServerError)]
        [InlineData(HttpStatusCode.BadGateway)]
        [InlineData(HttpStatusCode.ServiceUnavailable)]
        [InlineData(HttpStatusCode.TooManyRequests)]
        public async Task A_registry_that_fails_twice_with_5xx_or_429_then_answers_still_serves_the_manifest(HttpStatusCode failure)
        {
            var stub = new StubRegistry((_, index) => index < 2 ? Status(failure) : StubRegistry.Ok(StubRegistry.Manifest));
            var verbose = new List<string>();
            using var client = StubRegistry.Client(stub, verbose: verbose);

            var (bytes, _) = await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal(StubRegistry.Manifest, bytes);
            Assert.Equal(3, stub.Seen.Count);
            Assert.Contains(verbose, line => line.Contains("retrying in", StringComparison.Ordinal) && line.Contains("attempt 3 of 6", StringComparison.Ordinal));
        }

        [Fact]
        public async Task A_registry_that_keeps_failing_is_RegistryUnavailable_after_the_attempts_and_no_more()
        {
            var stub = new StubRegistry((_, _) => Status(HttpStatusCode.ServiceUnavailable));
            using var client = StubRegistry.Client(stub, limits: RegistryLimits.Default with { Attempts = 3 });

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryUnavailable", ex.ErrorId);
            Assert.Contains("(3 attempts)", ex.Message, StringComparison.Ordinal);
            Assert.Equal(3, stub.Seen.Count);
        }

        [Theory]
        [InlineData(HttpStatusCode.BadRequest, "RegistryRequestFailed")]
        [InlineData(HttpStatusCode.Forbidden, "RegistryAccessDenied")]
        [InlineData(HttpStatusCode.MethodNotAllowed, "RegistryRequestFailed")]
        public async Task A_4xx_answer_is_not_retried_and_keeps_its_error_id(HttpStatusCode status, string errorId)
        {
            var stub = new StubRegistry((_, _) => Status(status));
            using var client = StubRegistry.Client(stub);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal(errorId, ex.ErrorId);
            Assert.Single(stub.Seen);
        }

        [Fact]
        public async Task A_dropped_connection_is_retried()
        {
            var stub = new StubRegistry((_, index) => index == 0
                ? throw new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely.")
                : StubRegistry.Ok(StubRegistry.Manifest));
            using var client = StubRegistry.Client(stub);

            var (bytes, _) = await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal(StubRegistry.Manifest, bytes);
            Assert.Equal(2, stub.Seen.Count);
        }

        [Fact]
        public async Task A_name_that_does_not_resolve_fails_at_once_as_RegistryUnavailable()
        {
            var stub = new StubRegistry((_, _) => throw new HttpRequestException(HttpRequestError.NameResolutionError, "Name or service not known"));
            using var client = StubRegistry.Client(stub);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryUnavailable", ex.ErrorId);
            Assert.Single(stub.Seen);
        }

        [Fact]
        public async Task Retry_After_is_honoured_instead_of_the_back_off()
        {
            // The back-off would wait its longest, 15 s; Retry-After: 0 asks for no wait at all.
            var stub = new StubRegistry((_, index) => index == 0
                ? Status(HttpStatusCode.TooManyRequests, TimeSpan.Zero)
                : StubRegistry.Ok(StubRegistry.Manifest));
            using var client = StubRegistry.Client(stub, firstDelay: TimeSpan.FromHours(1));
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            deadline.CancelAfter(TimeSpan.FromSeconds(5));

            var (bytes, _) = await client.GetManifestAsync("1.0", deadline.Token);

            Assert.Equal(StubRegistry.Manifest, bytes);
            Assert.Equal(2, stub.Seen.Count);
        }

        [Theory]
        [InlineData(3600, 60)]
        [InlineData(7, 7)]
        [InlineData(0, 0)]
        public void A_Retry_After_is_bounded_to_a_minute(int askedSeconds, int waitedSeconds)
        {
            using var response = Status(HttpStatusCode.TooManyRequests, TimeSpan.FromSeconds(askedSeconds));

            Assert.Equal(TimeSpan.FromSeconds(waitedSeconds), RetryRules.RetryAfter(response));
        }

        [Fact]
        public void A_Retry_After_date_in_the_past_waits_nothing_and_none_leaves_the_back_off()
        {
            using var past = Status(HttpStatusCode.ServiceUnavailable);
            past.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(DateTimeOffset.UtcNow.AddHours(-1));
            using var none = Status(HttpStatusCode.ServiceUnavailable);

            Assert.Equal(TimeSpan.Zero, RetryRules.RetryAfter(past));
            Assert.Null(RetryRules.RetryAfter(none));
        }

        [Fact]
        public async Task Cancelling_ends_a_wait_before_a_retry_at_once()
        {
            // The registry asks for a minute's wait; the user cancels after a fraction of a second.
            var stub = new StubRegistry((_, _) => Status(HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(60)));
            using var client = StubRegistry.Client(stub);
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            cancel.CancelAfter(TimeSpan.FromMilliseconds(200));
            var clock = Stopwatch.StartNew();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetManifestAsync("1.0", cancel.Token));

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"cancelling took {clock.Elapsed}");
            Assert.Single(stub.Seen);
        }

        [Fact]
        public async Task Cancelling_ends_a_request_the_registry_does_not_answer()
        {
            var stub = new StubRegistry(async (_, _, token) =>
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, token);
                return StubRegistry.Ok(StubRegistry.Manifest);
            });
            using var client = StubRegistry.Client(stub);
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            cancel.CancelAfter(TimeSpan.FromMilliseconds(200));
            var clock = Stopwatch.StartNew();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetManifestAsync("1.0", cancel.Token));

            // The cancellation reached the request itself, not only the waits between attempts, and was not retried.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"cancelling took {clock.Elapsed}");
            Assert.Single(stub.Seen);
        }
    }
}
